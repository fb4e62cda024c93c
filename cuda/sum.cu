// sum (and mean) on the GPU: the CUDA twins of the kernels in layers/sum.cpp (the math and its NOTEs on accuracy
// and determinism are there). mean (layers/mean.cpp) has no kernels of its own: it calls these with scale = 1/len.
//
//   forward:   y[o, i]     = scale * sum_{l < len} x[o, l, i]        x: (outer, len, inner), y: (outer, inner)
//   backward:  dx[o, l, i] = scale * dy[o, i]
//
// Like the CPU kernels, every sum is accumulated in double and rounded to float once, after the scale; the order
// of the additions depends only on the sizes and the launch shape, never on timing, so a run repeats bit for bit.
// It is not the CPU's order, so results may differ from the CPU's in the last bit of the float (the double sums
// differ by a few units of 1e-16 relative; the tests allow 1e-6 relative). No atomics.
//
// The forward has three shapes of work, chosen by the launcher:
//   - everything into one value (outer * inner == 1): one block of 1024 threads, each summing a strided share of
//     x, then a block reduction (warp shuffles, then shared memory; cuda/block_reduce.h). One block on one SM has
//     about 1024 loads in flight: a few tens of GB/s instead of the GPU's 3.35 TB/s. Full sums here are losses and
//     test values (a few MB at most: well under a millisecond); a multi-block version needs a scratch buffer for
//     the block partial sums, which the kernel signature does not carry.
//   - inner >= 32 (sum over a leading dimension, e.g. linear's dbias = sum(dy, 0)): a 32 x 8 block per (o, 32
//     consecutive i): each warp reads 32 neighbouring floats of a row (coalesced), the 8 warps take every 8th l,
//     and the 8 partial sums of each column are added in shared memory.
//   - inner < 32 (sum over one of the last dimensions): one warp per output, its lanes taking every 32nd l, then a
//     shuffle reduction.
// All are memory-bound (one 4-byte load per element, a double add).
// The backward is elementwise (one thread per element of dx, grid-stride), memory-bound: a 4-byte store per element
// and a load of dy that mostly hits in cache.
#include "cuda/backend.h"
#include "cuda/block_reduce.h"
#include "layers/sum.h"

namespace strata {

namespace {

constexpr int kSumAllThreads = 1024;  // the one block of the full reduction
constexpr int kColumnsX = 32;         // columns kernel: 32 neighbouring inner positions ...
constexpr int kColumnsY = 8;          // ... times 8 interleaved shares of len
constexpr int kWarpsPerBlock = 8;     // rows kernel: one output per warp

// y[0] = scale * sum_i x[i], i < n. One block (blockDim.x a multiple of 32).
__global__ void sum_all_kernel(float* y, const float* x, int64_t n, float scale) {
    __shared__ double partials[33];
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
    double total = block_sum(acc, partials);
    if (threadIdx.x == 0) y[0] = float(double(scale) * total);
}

// x: (outer, len, inner), y: (outer, inner); blockDim = (kColumnsX, kColumnsY). Block b (grid-stride) sums the
// columns i0 .. i0 + 31 of outer index o. Thread (tx, ty) adds x[o, l, i0 + tx] for l = ty, ty + 8, ...; then the
// threads with ty = 0 add the 8 partial sums of their column in order.
__global__ void sum_columns_kernel(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, float scale) {
    __shared__ double partial[kColumnsY][kColumnsX];
    const int64_t tiles = (inner + kColumnsX - 1) / kColumnsX;
    for (int64_t b = blockIdx.x; b < outer * tiles; b += gridDim.x) {  // the same trip count for the whole block
        int64_t o = b / tiles;
        int64_t i = (b % tiles) * kColumnsX + threadIdx.x;
        double acc = 0.0;
        if (i < inner)
            for (int64_t l = threadIdx.y; l < len; l += kColumnsY) acc += x[(o * len + l) * inner + i];
        partial[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && i < inner) {
            double total = 0.0;
            for (int r = 0; r < kColumnsY; ++r) total += partial[r][threadIdx.x];
            y[o * inner + i] = float(double(scale) * total);
        }
        __syncthreads();  // the next tile overwrites partial
    }
}

// x: (outer, len, inner), y: (outer, inner) seen as outer * inner outputs t = o * inner + i. One warp per output
// (grid-stride over outputs): lane k adds x[o, l, i] for l = k, k + 32, ..., then the warp adds its 32 sums.
__global__ void sum_rows_kernel(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, float scale) {
    const int lane = threadIdx.x % 32;
    const int64_t warps_in_grid = int64_t(gridDim.x) * (blockDim.x / 32);
    for (int64_t t = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; t < outer * inner; t += warps_in_grid) {
        int64_t o = t / inner, i = t % inner;  // the same for every lane of the warp
        double acc = 0.0;
        for (int64_t l = lane; l < len; l += 32) acc += x[(o * len + l) * inner + i];
        acc = warp_sum(acc);
        if (lane == 0) y[t] = float(double(scale) * acc);
    }
}

// dx[o, l, i] = scale * dy[o, i] over the n = outer * len * inner elements of dx (j = (o * len + l) * inner + i).
__global__ void sum_backward_kernel(float* dx, const float* dy, int64_t outer, int64_t len, int64_t inner,
                                    float scale, int64_t n) {
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
        int64_t o = outer == 1 ? 0 : j / (len * inner);  // skip the divisions where they are known (full sums)
        int64_t i = inner == 1 ? 0 : j % inner;
        dx[j] = scale * dy[o * inner + i];
    }
}

unsigned grid_for_blocks(int64_t blocks) { return unsigned(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks); }

void sum_forward_cuda(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, float scale) {
    if (outer * inner == 0) return;  // no outputs
    if (outer * inner == 1) {
        CUEMU_LAUNCH(sum_all_kernel, 1, kSumAllThreads, 0, cuda_current_stream(), y, x, len, scale);
    } else if (inner >= kColumnsX) {
        int64_t blocks = outer * ((inner + kColumnsX - 1) / kColumnsX);
        CUEMU_LAUNCH(sum_columns_kernel, grid_for_blocks(blocks), dim3(kColumnsX, kColumnsY), 0,
                     cuda_current_stream(), y, x, outer, len, inner, scale);
    } else {
        int64_t blocks = (outer * inner + kWarpsPerBlock - 1) / kWarpsPerBlock;
        CUEMU_LAUNCH(sum_rows_kernel, grid_for_blocks(blocks), kWarpsPerBlock * 32, 0, cuda_current_stream(), y, x,
                     outer, len, inner, scale);
    }
    CUDA_CHECK_LAUNCH();
}

void sum_backward_cuda(float* dx, const float* dy, int64_t outer, int64_t len, int64_t inner, float scale) {
    int64_t n = outer * len * inner;
    if (n == 0) return;
    CUEMU_LAUNCH(sum_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dy, outer, len,
                 inner, scale, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(sum_forward, DeviceType::CUDA, sum_forward_cuda);
REGISTER_KERNEL(sum_backward, DeviceType::CUDA, sum_backward_cuda);

}  // namespace strata
