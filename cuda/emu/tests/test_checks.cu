// The checks a GPU does not give you: each test runs a deliberately wrong kernel or call and expects the
// emulator's report (with its file and line), an error from cudaDeviceSynchronize where a kernel failed, and the
// error counter.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cuda/blas_shim.h"
#include "cuda/emu/tests/helpers.h"

namespace {

// The expected reports name the first thread to arrive somewhere, which depends on the resume order: these tests
// run in forward order whatever CUEMU_ORDER says.
struct ForwardOrder {
    cuemu::Order saved = cuemu::settings().order;
    ForwardOrder() { cuemu::settings().order = cuemu::Order::Forward; }
    ~ForwardOrder() { cuemu::settings().order = saved; }
};

// "<this file>:<line>", as the reports print it
std::string here(int line) {
    return std::string(__FILE__) + ":" + std::to_string(line);
}

constexpr int kLineBarrierA = __LINE__ + 5;
constexpr int kLineBarrierB = __LINE__ + 7;
// __syncthreads in both arms of a branch: two different barriers that never meet.
__global__ void divergent_barrier(float* x) {
    if (threadIdx.x < 16) {
        __syncthreads();
        x[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        x[threadIdx.x] = 2.0f;
    }
}

constexpr int kLineHalfShuffle = __LINE__ + 5;
constexpr int kLineAfterShuffle = __LINE__ + 5;
// Only half of the warp reaches a full-mask shuffle; the other half waits at the barrier.
__global__ void half_warp_full_mask(float* x) {
    float v = x[threadIdx.x];
    if (threadIdx.x < 16) v += __shfl_down_sync(0xffffffffu, v, 8);
    __syncthreads();
    x[threadIdx.x] = v;
}

constexpr int kLineExitedSource = __LINE__ + 5;
// Lanes 16-31 exit; lanes 0-15 then shuffle with a full mask (allowed: exited lanes drop out) but read lanes 16-31.
__global__ void shuffle_reads_exited_lane(float* x) {
    if (threadIdx.x >= 16) return;
    float v = x[threadIdx.x];
    v += __shfl_down_sync(0xffffffffu, v, 16);
    x[threadIdx.x] = v;
}

// Lanes 0-15 shuffle among themselves but read lane 20.
__global__ void shuffle_outside_mask(float* x) {
    if (threadIdx.x < 16) x[threadIdx.x] = __shfl_sync(0x0000ffffu, x[threadIdx.x], 20);
}

// Lane 0 uses mask 0x3, every other lane the full mask: neither operation can complete.
__global__ void mismatched_masks(float* x) {
    unsigned mask = threadIdx.x == 0 ? 0x3u : 0xffffffffu;
    x[threadIdx.x] = __shfl_sync(mask, x[threadIdx.x], 1);
}

// Threads past n return before the barrier: it completes (exited threads count as arrived), with a warning.
__global__ void early_exit_before_barrier(float* x, int n) {
    __shared__ float s[64];
    if (int(threadIdx.x) >= n) return;
    s[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    x[threadIdx.x] = s[n - 1 - threadIdx.x];
}

__global__ void uses_dynamic_shared(float* x) {
    CUEMU_DYNAMIC_SHARED(float, buf);
    buf[threadIdx.x] = 1.0f;
    x[threadIdx.x] = buf[threadIdx.x];
}

}  // namespace

TEST_CASE("cuemu checks: a divergent __syncthreads names both lines") {
    DeviceArray<float> x(32);
    ForwardOrder forward;
    cuemu::CaptureReports capture;
    CUEMU_LAUNCH(divergent_barrier, 1, 32, 0, 0, x.ptr);
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    CHECK(capture.errors() == 1);
    INFO(capture.all());
    CHECK(capture.contains("divergent __syncthreads"));
    CHECK(capture.contains("kernel divergent_barrier, block (0,0,0), thread (16,0,0)"));
    CHECK(capture.contains("this thread is at " + here(kLineBarrierB)));
    CHECK(capture.contains("16 thread(s) wait at " + here(kLineBarrierA)));
}

TEST_CASE("cuemu checks: a full-mask shuffle reached by half a warp deadlocks, and the report says where") {
    DeviceArray<float> x(std::vector<float>(32, 1.0f));
    ForwardOrder forward;
    cuemu::CaptureReports capture;
    CUEMU_LAUNCH(half_warp_full_mask, 2, 32, 0, 0, x.ptr);
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    CHECK(capture.errors() == 2);  // the deadlock, and the block that was not run
    INFO(capture.all());
    CHECK(capture.contains("kernel half_warp_full_mask, block (0,0,0): deadlock: no thread can proceed"));
    CHECK(capture.contains("16 thread(s) wait in __shfl_down_sync with mask 0xffffffff at " + here(kLineHalfShuffle) +
                           ": threads 0-15"));
    CHECK(capture.contains("16 thread(s) wait in __syncthreads at " + here(kLineAfterShuffle) + ": threads 16-31"));
    CHECK(capture.contains("warp 0, mask 0xffffffff: waits for lane(s) 16-31"));
    CHECK(capture.contains("the remaining 1 block(s) were not run"));
}

TEST_CASE("cuemu checks: shuffles that read an exited lane or a lane outside the mask") {
    DeviceArray<float> x(std::vector<float>(32, 1.0f));
    ForwardOrder forward;
    SUBCASE("exited lane") {
        cuemu::CaptureReports capture;
        CUEMU_LAUNCH(shuffle_reads_exited_lane, 1, 32, 0, 0, x.ptr);
        CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
        INFO(capture.all());
        CHECK(capture.errors() == 1);
        CHECK(capture.contains(here(kLineExitedSource) +
                               ": kernel shuffle_reads_exited_lane, block (0,0,0), thread (0,0,0): "
                               "__shfl_down_sync: lane 0 reads lane 16, which has exited"));
    }
    SUBCASE("lane outside the mask") {
        cuemu::CaptureReports capture;
        CUEMU_LAUNCH(shuffle_outside_mask, 1, 32, 0, 0, x.ptr);
        CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
        INFO(capture.all());
        CHECK(capture.contains("__shfl_sync: lane 0 reads lane 20, which is outside the mask 0xffff"));
    }
    SUBCASE("a partial warp: the lane does not exist") {
        cuemu::CaptureReports capture;
        CUEMU_LAUNCH(shuffle_reads_exited_lane, 1, 24, 0, 0, x.ptr);
        INFO(capture.all());
        CHECK(capture.contains("lane 0 reads lane 16, which has exited"));
        CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    }
}

TEST_CASE("cuemu checks: lanes waiting with different masks") {
    DeviceArray<float> x(32);
    ForwardOrder forward;
    cuemu::CaptureReports capture;
    CUEMU_LAUNCH(mismatched_masks, 1, 32, 0, 0, x.ptr);
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    INFO(capture.all());
    CHECK(capture.contains("deadlock"));
    CHECK(capture.contains(
        "warp 0, mask 0x3: waits for lane(s) 1, which wait in a warp operation with mask 0xffffffff"));
}

TEST_CASE("cuemu checks: a barrier after some threads returned completes with a warning") {
    DeviceArray<float> x(std::vector<float>(64, 3.0f));
    cuemu::CaptureReports capture;
    CUEMU_LAUNCH(early_exit_before_barrier, 1, 64, 0, 0, x.ptr, 40);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(capture.errors() == 0);
    CHECK(capture.warnings() == 1);
    INFO(capture.all());
    CHECK(capture.contains("__syncthreads completed with 24 thread(s) of the block already exited"));
}

TEST_CASE("cuemu checks: invalid launch configurations") {
    DeviceArray<float> x(32);
    cuemu::CaptureReports capture;
    CUEMU_LAUNCH(uses_dynamic_shared, 1, dim3(64, 32), 0, 0, x.ptr);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CHECK(capture.contains("2048 threads per block; at most 1024"));
    CUEMU_LAUNCH(uses_dynamic_shared, dim3(1, 70000), 32, 0, 0, x.ptr);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CUEMU_LAUNCH(uses_dynamic_shared, 0, 32, 0, 0, x.ptr);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CUEMU_LAUNCH(uses_dynamic_shared, 1, 32, 300 * 1024, 0, x.ptr);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(capture.errors() == 4);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);  // none of them ran
}

TEST_CASE("cuemu checks: more than 48 KiB of dynamic shared memory warns unless the kernel allows it") {
    DeviceArray<float> x(32);
    cuemu::CaptureReports capture;
    CUEMU_LAUNCH(uses_dynamic_shared, 1, 32, 64 * 1024, 0, x.ptr);
    CHECK(capture.warnings() == 1);
    CHECK_MESSAGE(capture.contains("cudaFuncAttributeMaxDynamicSharedMemorySize"), capture.all());
    CHECK(cudaFuncSetAttribute(uses_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) ==
          cudaSuccess);
    CUEMU_LAUNCH(uses_dynamic_shared, 1, 32, 64 * 1024, 0, x.ptr);
    CHECK(capture.warnings() == 1);
    CHECK(capture.errors() == 0);
    CHECK(x.download() == std::vector<float>(32, 1.0f));
}

TEST_CASE("cuemu checks: host API misuse") {
    DeviceArray<float> d(16);
    std::vector<float> h(16, 0.0f);
    cuemu::CaptureReports capture;
    SUBCASE("cudaMemcpy with the wrong kind") {
        int line = __LINE__ + 1;
        CHECK(cudaMemcpy(d.ptr, h.data(), 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
        INFO(capture.all());
        CHECK(capture.contains(here(line) + ": host: cudaMemcpy: dst 0x"));
        CHECK(capture.contains("is device memory, but the kind cudaMemcpyDeviceToHost says it is host memory"));
        CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    }
    SUBCASE("cudaMemcpy past the end of an allocation") {
        CHECK(cudaMemcpy(d.ptr + 8, h.data(), 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
        INFO(capture.all());
        CHECK(capture.contains("needs 64 bytes at offset 32 of a cudaMalloc allocation of 64 bytes"));
        CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    }
    SUBCASE("cudaMemset and cudaFree of host memory") {
        CHECK(cudaMemset(h.data(), 0, 64) == cudaErrorInvalidValue);
        CHECK(cudaFree(h.data()) == cudaErrorInvalidValue);
        CHECK(cudaFree(d.ptr + 1) == cudaErrorInvalidValue);
        INFO(capture.all());
        CHECK(capture.contains("is not device memory"));
        CHECK(capture.contains("is not a live cudaMalloc allocation"));
        CHECK(capture.contains("points inside an allocation, not at its start"));
        CHECK(capture.errors() == 3);
        CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    }
    SUBCASE("cudaMemcpyDefault infers the direction") {
        CHECK(cudaMemcpy(d.ptr, h.data(), 64, cudaMemcpyDefault) == cudaSuccess);
        CHECK(cudaMemcpy(h.data(), d.ptr, 64, cudaMemcpyDefault) == cudaSuccess);
        CHECK(capture.errors() == 0);
    }
    SUBCASE("cuBLAS with a too small leading dimension or a host matrix") {
        cublasHandle_t handle;
        REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
        float one = 1.0f, zero = 0.0f;
        DeviceArray<float> small(8);
        CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d.ptr, 3, d.ptr, 4, &zero, d.ptr, 4) ==
              CUBLAS_STATUS_INVALID_VALUE);
        CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d.ptr, 4, h.data(), 4, &zero, d.ptr, 4) ==
              CUBLAS_STATUS_INVALID_VALUE);
        CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d.ptr, 4, d.ptr, 4, &zero, small.ptr, 4) ==
              CUBLAS_STATUS_INVALID_VALUE);
        cublasDestroy(handle);
        INFO(capture.all());
        CHECK(capture.contains("cublasSgemm: lda 3 < 4"));
        CHECK(capture.contains("cublasSgemm: B 0x"));
        CHECK(capture.contains("cublasSgemm: C needs 64 bytes at offset 0 of a cudaMalloc allocation of 32 bytes"));
    }
}

TEST_CASE("cuemu checks: the error counter and cudaGetDeviceCount") {
    CHECK(cuemu::error_count() == 0);
    int count = -1;
    CHECK(cudaGetDeviceCount(&count) == cudaSuccess);
    CHECK(count == cuemu::settings().devices);
    cuemu::CaptureReports capture;
    CHECK(cudaSetDevice(count) == cudaErrorInvalidDevice);
    CHECK(cuemu::error_count() == 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
    CHECK(cudaGetLastError() == cudaSuccess);  // reading it cleared it
}

namespace {

__global__ void add_one(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

}  // namespace

TEST_CASE("cuemu checks: a kernel runs on the current device, with that device's memory and streams") {
    const int saved = cuemu::settings().devices;
    cuemu::settings().devices = 2;
    REQUIRE(cudaSetDevice(1) == cudaSuccess);
    DeviceArray<float> on_1(4);
    on_1.zero();
    cudaStream_t stream_1 = nullptr;
    REQUIRE(cudaStreamCreate(&stream_1) == cudaSuccess);
    CUEMU_LAUNCH(add_one, 1, 32, 0, stream_1, on_1.ptr, 4);  // all on device 1: fine
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(on_1.download() == std::vector<float>(4, 1.0f));
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    {
        cuemu::CaptureReports capture;
        CUEMU_LAUNCH(add_one, 1, 32, 0, 0, on_1.ptr, 4);
        CHECK(cudaGetLastError() == cudaErrorInvalidValue);
        CUEMU_LAUNCH(add_one, 1, 32, 0, stream_1, nullptr, 0);
        CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
        INFO(capture.all());
        CHECK(capture.contains("is memory of device 1, but the kernel runs on device 0"));
        CHECK(capture.contains("the stream belongs to device 1, but the current device is 0"));
    }
    CHECK(on_1.download() == std::vector<float>(4, 1.0f));  // neither launch ran
    // events: created on a device, recorded on its streams only, always complete
    cudaEvent_t event_0 = nullptr;
    REQUIRE(cudaEventCreateWithFlags(&event_0, cudaEventDisableTiming) == cudaSuccess);
    {
        cuemu::CaptureReports capture;
        CHECK(cudaEventRecord(event_0, stream_1) == cudaErrorInvalidResourceHandle);
        CHECK(capture.contains("cudaEventRecord: the event was created on device 0, the stream belongs to device 1"));
        CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
    }
    CHECK(cudaEventRecord(event_0) == cudaSuccess);
    CHECK(cudaEventQuery(event_0) == cudaSuccess);
    CHECK(cudaStreamWaitEvent(stream_1, event_0, 0) == cudaSuccess);
    CHECK(cudaEventDestroy(event_0) == cudaSuccess);
    REQUIRE(cudaSetDevice(1) == cudaSuccess);
    CHECK(cudaStreamDestroy(stream_1) == cudaSuccess);
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    cuemu::settings().devices = saved;
}
