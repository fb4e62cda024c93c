// Deliberately broken kernels for the sanitizer builds of the emulator, one scenario per run:
//
//     cuemu_bugs_tsan <scenario>     (built with -fsanitize=thread)
//     cuemu_bugs_asan <scenario>     (built with -fsanitize=address,undefined)
//
// test_sanitizers.cpp runs these as child processes and expects the sanitizer's report, naming this file and the
// kernel's line. The correct kernels of kernels.h run as controls that must give no report at all. The program
// prints "<scenario>: result right|wrong" and leaves the exit code to the sanitizer.
#include <cstdio>
#include <cstring>
#include <vector>

#include "cuda/emu/tests/kernels.h"

namespace {

// tiled_sgemm without the second __syncthreads: a fast thread's next tile load overwrites a_tile/b_tile while
// slower threads still read the previous tile. The race is between the load below and the read in the inner loop.
__global__ void gemm_missing_sync(float* C, const float* A, const float* B, int M, int N, int K) {
    __shared__ float a_tile[kTile][kTile];
    __shared__ float b_tile[kTile][kTile];
    int row = blockIdx.y * kTile + threadIdx.y;
    int col = blockIdx.x * kTile + threadIdx.x;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += kTile) {
        int ak = k0 + threadIdx.x, bk = k0 + threadIdx.y;
        a_tile[threadIdx.y][threadIdx.x] = row < M && ak < K ? A[row * K + ak] : 0.0f;  // BUG: races with the reads
        b_tile[threadIdx.y][threadIdx.x] = bk < K && col < N ? B[bk * N + col] : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < kTile; ++kk) acc += a_tile[threadIdx.y][kk] * b_tile[kk][threadIdx.x];
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

// byte_histogram with a plain increment instead of atomicAdd on the shared counts.
__global__ void histogram_plus_plus(unsigned* counts, const unsigned char* data, int n) {
    __shared__ unsigned local[256];
    for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) local[data[i]]++;  // BUG
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x)
        if (local[b]) atomicAdd(&counts[b], local[b]);
}

// The pre-Volta "warp-synchronous" reduction: it assumes the 32 lanes of a warp run in lockstep, so it has no
// __syncwarp between the steps. Since Volta lanes may diverge; the emulator's threads run one after another.
__global__ void warp_reduce_no_syncwarp(float* out, const float* x) {
    __shared__ float s[64];
    int t = threadIdx.x;
    s[t] = x[t];
    s[t + 32] = 0.0f;
    if (t < 16) {
        s[t] += s[t + 16];  // BUG: reads lane t+16's store without __syncwarp
        s[t] += s[t + 8];
        s[t] += s[t + 4];
        s[t] += s[t + 2];
        s[t] += s[t + 1];
    }
    if (t == 0) *out = s[0];
}

// y = 2x with no `if (i < n)` guard: the last block reads and writes past the end of the arrays.
__global__ void scale_unguarded(float* y, const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = 2.0f * x[i];  // BUG: i may be >= n
}

// A static shared array one element too small.
__global__ void shared_off_by_one(float* out) {
    __shared__ float s[32];
    s[threadIdx.x + 1] = float(threadIdx.x);  // BUG: thread 31 writes s[32]
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

// Dynamic shared memory sized for one thread less than the block has.
__global__ void dynamic_shared_too_small(float* out) {
    CUEMU_DYNAMIC_SHARED(float, buf);
    buf[threadIdx.x] = 1.0f;  // BUG: the launch gives blockDim.x - 1 floats
    __syncthreads();
    out[threadIdx.x] = buf[0];
}

float* device_copy(const std::vector<float>& host) {
    float* d = nullptr;
    cudaMalloc(&d, host.size() * sizeof(float));
    cudaMemcpy(d, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}

std::vector<float> host_copy(const float* d, size_t n) {
    std::vector<float> host(n);
    cudaMemcpy(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return host;
}

// Runs tiled_sgemm or its broken twin on 32x32 matrices; right if it matches a CPU loop.
bool run_gemm(bool broken) {
    const int n = 32;
    std::vector<float> A(n * n), B(n * n), want(n * n, 0.0f);
    for (int i = 0; i < n * n; ++i) A[i] = float(i % 7) - 3.0f, B[i] = float(i % 5) - 2.0f;
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
            for (int k = 0; k < n; ++k) want[i * n + j] += A[i * n + k] * B[k * n + j];
    float *dA = device_copy(A), *dB = device_copy(B), *dC = device_copy(want);
    dim3 grid(n / kTile, n / kTile), block(kTile, kTile);
    if (broken) CUEMU_LAUNCH(gemm_missing_sync, grid, block, 0, 0, dC, dA, dB, n, n, n);
    else CUEMU_LAUNCH(tiled_sgemm, grid, block, 0, 0, dC, dA, dB, n, n, n);
    bool right = host_copy(dC, n * n) == want;
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
    return right;
}

bool run_histogram(bool broken) {
    const int n = 4096;
    std::vector<unsigned char> data(n);
    std::vector<unsigned> want(256, 0);
    for (int i = 0; i < n; ++i) data[i] = static_cast<unsigned char>(i * 7 % 13), ++want[data[i]];
    unsigned char* d_data = nullptr;
    unsigned* d_counts = nullptr;
    cudaMalloc(&d_data, n);
    cudaMalloc(&d_counts, 256 * sizeof(unsigned));
    cudaMemcpy(d_data, data.data(), n, cudaMemcpyHostToDevice);
    cudaMemset(d_counts, 0, 256 * sizeof(unsigned));
    if (broken) CUEMU_LAUNCH(histogram_plus_plus, 2, 128, 0, 0, d_counts, d_data, n);
    else CUEMU_LAUNCH(byte_histogram, 2, 128, 0, 0, d_counts, d_data, n);
    std::vector<unsigned> got(256);
    cudaMemcpy(got.data(), d_counts, 256 * sizeof(unsigned), cudaMemcpyDeviceToHost);
    cudaFree(d_data), cudaFree(d_counts);
    return got == want;
}

bool run_warp_reduce() {
    float* x = device_copy(std::vector<float>(32, 8.0f));
    float* out = device_copy({0.0f});
    CUEMU_LAUNCH(warp_reduce_no_syncwarp, 1, 32, 0, 0, out, x);
    bool right = host_copy(out, 1)[0] == 256.0f;
    cudaFree(x), cudaFree(out);
    return right;
}

bool run_scale_unguarded() {
    const int n = 100;
    float* x = device_copy(std::vector<float>(n, 1.0f));
    float* y = device_copy(std::vector<float>(n, 0.0f));
    CUEMU_LAUNCH(scale_unguarded, (n + 63) / 64, 64, 0, 0, y, x, n);
    bool right = host_copy(y, n) == std::vector<float>(n, 2.0f);
    cudaFree(x), cudaFree(y);
    return right;
}

bool run_shared_off_by_one() {
    float* out = device_copy(std::vector<float>(32, 0.0f));
    CUEMU_LAUNCH(shared_off_by_one, 1, 32, 0, 0, out);
    cudaFree(out);
    return false;
}

bool run_dynamic_shared_too_small() {
    float* out = device_copy(std::vector<float>(32, 0.0f));
    CUEMU_LAUNCH(dynamic_shared_too_small, 1, 32, 31 * sizeof(float), 0, out);
    cudaFree(out);
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    struct Scenario {
        const char* name;
        bool (*run)();
    };
    const Scenario scenarios[] = {
        {"gemm", [] { return run_gemm(false); }},
        {"gemm_missing_sync", [] { return run_gemm(true); }},
        {"histogram", [] { return run_histogram(false); }},
        {"histogram_plus_plus", [] { return run_histogram(true); }},
        {"warp_reduce_no_syncwarp", run_warp_reduce},
        {"scale_unguarded", run_scale_unguarded},
        {"shared_off_by_one", run_shared_off_by_one},
        {"dynamic_shared_too_small", run_dynamic_shared_too_small},
    };
    for (const Scenario& s : scenarios) {
        if (argc == 2 && std::strcmp(argv[1], s.name) == 0) {
            bool right = s.run();
            std::printf("%s: result %s\n", s.name, right ? "right" : "wrong");
            return cuemu::error_count() == 0 ? 0 : 3;
        }
    }
    std::fprintf(stderr, "usage: %s <scenario>; scenarios:", argv[0]);
    for (const Scenario& s : scenarios) std::fprintf(stderr, " %s", s.name);
    std::fprintf(stderr, "\n");
    return 2;
}
