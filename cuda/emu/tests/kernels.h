// Correct kernels the emulator is tested with (test_kernels.cu) and the sanitizer children use as controls
// (bugs/cuemu_bugs.cu). Each is a textbook CUDA pattern: plain CUDA plus the two source rules (cuemu.h).
// NOTE: the kernels are defined here, not just declared: include this header from one file per program.
#pragma once

#include "cuda/emu/cuemu.h"

constexpr int kTile = 16;

// C = A * B, row-major, A (M, K), B (K, N), C (M, N). Block (16, 16) computes a 16x16 tile of C, walking K in
// 16-wide steps: load a tile of A and of B into shared memory, wait, accumulate, wait again before the next load
// overwrites the tiles.
__global__ void tiled_sgemm(float* C, const float* A, const float* B, int M, int N, int K) {
    __shared__ float a_tile[kTile][kTile];
    __shared__ float b_tile[kTile][kTile];
    int row = blockIdx.y * kTile + threadIdx.y;
    int col = blockIdx.x * kTile + threadIdx.x;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += kTile) {
        int ak = k0 + threadIdx.x, bk = k0 + threadIdx.y;
        a_tile[threadIdx.y][threadIdx.x] = row < M && ak < K ? A[row * K + ak] : 0.0f;
        b_tile[threadIdx.y][threadIdx.x] = bk < K && col < N ? B[bk * N + col] : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < kTile; ++kk) acc += a_tile[threadIdx.y][kk] * b_tile[kk][threadIdx.x];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

// The sum of v over the 32 lanes of a warp, in lane 0 (tree of shuffles; the other lanes get partial sums).
__device__ inline float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// partial[b] = sum of x over block b's grid-stride share. blockDim.x is a multiple of 32 (up to 1024): each warp
// reduces with shuffles, warp 0 reduces the per-warp sums.
__global__ void block_reduce_shfl(float* partial, const float* x, int n) {
    __shared__ float warp_sums[32];
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) partial[blockIdx.x] = v;
    }
}

// partial[b] = sum of x over block b's grid-stride share, by a tree in dynamic shared memory (blockDim.x floats;
// blockDim.x a power of two).
__global__ void block_reduce_dynamic_shared(float* partial, const float* x, int n) {
    CUEMU_DYNAMIC_SHARED(float, buf);
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (int(threadIdx.x) < half) buf[threadIdx.x] += buf[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = buf[0];
}

// counts[v] += how many bytes of data equal v. Each block counts its share in shared memory with atomics, then adds
// its 256 counts to the global ones.
__global__ void byte_histogram(unsigned* counts, const unsigned char* data, int n) {
    __shared__ unsigned local[256];
    for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[data[i]], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x)
        if (local[b]) atomicAdd(&counts[b], local[b]);
}
