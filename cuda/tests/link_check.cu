// The CUDA runtime, cuBLAS and NCCL, called directly. Built both ways (cuda/cuda.mk):
//   - real (nvcc, linked with cudart, cuBLAS and NCCL, never -lcuda): the program must link and start on any
//     machine. Without a GPU or a driver, cudaGetDeviceCount fails (cudaErrorInsufficientDriver): the test says so
//     in one line and checks that the other libraries fail cleanly too. With a GPU it runs the device case below;
//   - emulated: the emulator reports CUEMU_DEVICES devices (2 in the test programs: two_devices.cu), so the device
//     case runs on the CPU, through the cuBLAS and NCCL stand-ins.
#include <doctest/doctest.h>

#include <cstdio>
#include <vector>

#include "cuda/blas_shim.h"
#include "cuda/emu/cuemu.h"
#include "cuda/nccl_shim.h"

namespace {

// x[i] = 2 x[i] + 1
__global__ void twice_plus_one(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 2.0f * x[i] + 1.0f;
}

}  // namespace

TEST_CASE("cuda runtime: a kernel, cuBLAS and NCCL on a device, or a clean report that there is none") {
    int nccl_version = 0;
    CHECK(ncclGetVersion(&nccl_version) == ncclSuccess);
    CHECK(nccl_version > 0);

    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        std::printf("cuda: no GPU present (cudaGetDeviceCount: %s, %d devices): the CUDA test cases are skipped\n",
                    cudaGetErrorName(e), count);
        CHECK(count == 0);
        float* p = nullptr;
        CHECK(cudaMalloc(&p, 16) != cudaSuccess);
        cublasHandle_t handle = nullptr;
        CHECK(cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS);
        return;
    }

    const int n = 300;
    std::vector<float> host(n);
    for (int i = 0; i < n; ++i) host[i] = float(i);
    float* x = nullptr;
    REQUIRE(cudaMalloc(&x, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(x, host.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    CUEMU_LAUNCH(twice_plus_one, (n + 127) / 128, 128, 0, 0, x, n);
    CHECK(cudaGetLastError() == cudaSuccess);

    // x . x as a 1x1 GEMM: (1 x n) times (n x 1)
    cublasHandle_t handle = nullptr;
    REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    float* dot = nullptr;
    REQUIRE(cudaMalloc(&dot, sizeof(float)) == cudaSuccess);
    float one = 1.0f, zero = 0.0f;
    CHECK(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, 1, 1, n, &one, x, n, x, n, &zero, dot, 1) ==
          CUBLAS_STATUS_SUCCESS);

    // a one-rank all-reduce is a copy
    ncclComm_t comm = nullptr;
    int device = 0;
    REQUIRE(ncclCommInitAll(&comm, 1, &device) == ncclSuccess);
    float* reduced = nullptr;
    REQUIRE(cudaMalloc(&reduced, n * sizeof(float)) == cudaSuccess);
    CHECK(ncclAllReduce(x, reduced, n, ncclFloat, ncclSum, comm, 0) == ncclSuccess);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);

    std::vector<float> got(n);
    float got_dot = 0.0f;
    REQUIRE(cudaMemcpy(got.data(), reduced, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(&got_dot, dot, sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    double want_dot = 0;
    for (int i = 0; i < n; ++i) {
        CHECK(got[i] == 2.0f * float(i) + 1.0f);
        want_dot += double(got[i]) * got[i];
    }
    CHECK(got_dot == doctest::Approx(want_dot).epsilon(1e-5));

    ncclCommDestroy(comm);
    cublasDestroy(handle);
    cudaFree(x);
    cudaFree(dot);
    cudaFree(reduced);
}
