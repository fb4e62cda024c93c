// adaptive_avg_pool2d on the GPU: the CUDA twins of the kernels in layers/adaptive_avg_pool2d.cpp (PyTorch's bin
// edges and the math are there).
//
//   forward:   y[i, j]  = mean of x over rows [start(i), end(i)) x columns [start(j), end(j))
//   backward:  dx[h, w] = sum over the bins (i, j) that hold (h, w) of dy[i, j] / (area of bin (i, j))
//   start(i) = floor(i * I / O),  end(i) = ceil((i + 1) * I / O)
//
// Forward: one WARP per output element (a bin is a reduction: PSPNet's pyramid pools a 60x60 map into bins of
// 3600, 900, 400 and 100 elements). The warp walks the bin row by row; in a row, lane l adds columns w0 + l,
// w0 + l + 32, ... (consecutive lanes read consecutive floats, so the loads coalesce; no division per element),
// each lane sums in float, and a tree of __shfl_down_sync adds the 32 partial sums. Bins narrower than 32 leave
// lanes idle, which costs issue slots but no memory traffic. The order of the additions differs from the CPU's
// row-by-row loop, so y matches the CPU within float rounding, not bitwise (the test's tolerance says how much);
// it is fixed by the lane indices alone, so runs are reproducible.
// Backward: a gather, one thread per INPUT element, instead of the CPU's scatter (bins overlap when O does not
// divide I, which would need atomicAdd). The thread visits the bins that hold its element in the CPU's order and
// adds the same shares, so dx is bitwise equal to the CPU's.
//
// Both kernels are memory-bound: the forward reads x once (plus the overlap of neighbouring bins) and writes a
// small y; the backward reads dy from L1/L2 (an element of dy is read by the whole bin) and writes dx once.
#include "cuda/backend.h"
#include "layers/adaptive_avg_pool2d.h"

namespace strata {

namespace {

constexpr int kWarpSize = 32;

// Bin i of `out` bins over `in` elements: bin_start / bin_end of layers/adaptive_avg_pool2d.cpp.
__device__ int64_t bin_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
__device__ int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// y: (planes, out_h, out_w); x: (planes, in_h, in_w). Launched with a multiple of 32 threads per block: warp k of
// the grid handles outputs k, k + (number of warps), ...; the loop condition is the same for all lanes of a warp,
// so every lane reaches the shuffles.
__global__ void adaptive_avg_pool2d_forward_kernel(float* y, const float* x, int64_t planes, int64_t in_h,
                                                   int64_t in_w, int64_t out_h, int64_t out_w) {
    int lane = threadIdx.x % kWarpSize;
    int64_t warps_per_grid = int64_t(gridDim.x) * (blockDim.x / kWarpSize);
    int64_t n = planes * out_h * out_w;
    for (int64_t o = blockIdx.x * int64_t(blockDim.x / kWarpSize) + threadIdx.x / kWarpSize; o < n;
         o += warps_per_grid) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = o / (out_h * out_w), at = o - plane * (out_h * out_w);
        int64_t i = at / out_w, j = at - i * out_w;
        int64_t h0 = bin_start(i, in_h, out_h), h1 = bin_end(i, in_h, out_h);
        int64_t w0 = bin_start(j, in_w, out_w), w1 = bin_end(j, in_w, out_w);
        const float* xp = x + plane * in_h * in_w;
        float sum = 0.0f;
        for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0 + lane; w < w1; w += kWarpSize) sum += xp[h * in_w + w];
        // lane l adds lane l + 16, then l + 8, ...: lane 0 ends with the sum of all 32
        for (int offset = kWarpSize / 2; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
        if (lane == 0) y[o] = sum / float((h1 - h0) * (w1 - w0));
    }
}

// dx: (planes, in_h, in_w); dy: (planes, out_h, out_w)
__global__ void adaptive_avg_pool2d_backward_kernel(float* dx, const float* dy, int64_t planes, int64_t in_h,
                                                    int64_t in_w, int64_t out_h, int64_t out_w) {
    int64_t n = planes * in_h * in_w;
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = t / (in_h * in_w), at = t - plane * (in_h * in_w);
        int64_t h = at / in_w, w = at - h * in_w;
        const float* dyp = dy + plane * out_h * out_w;
        // The bins holding h are the i with start(i) <= h < end(i), a run of consecutive i; the first is
        // floor(h * O / I), the smallest i whose end passes h.
        float sum = 0.0f;
        for (int64_t i = h * out_h / in_h; i < out_h && bin_start(i, in_h, out_h) <= h; ++i) {
            int64_t bin_h = bin_end(i, in_h, out_h) - bin_start(i, in_h, out_h);
            for (int64_t j = w * out_w / in_w; j < out_w && bin_start(j, in_w, out_w) <= w; ++j) {
                int64_t bin_w = bin_end(j, in_w, out_w) - bin_start(j, in_w, out_w);
                sum += dyp[i * out_w + j] / float(bin_h * bin_w);  // the CPU's share, in the CPU's order
            }
        }
        dx[t] = sum;
    }
}

void adaptive_avg_pool2d_forward_cuda(float* y, const float* x, int64_t planes, int64_t in_h, int64_t in_w,
                                      int64_t out_h, int64_t out_w) {
    int64_t n = planes * out_h * out_w;
    if (n == 0) return;
    // one warp per output: the grid covers n * 32 threads (capped; the loop strides over the rest)
    CUEMU_LAUNCH(adaptive_avg_pool2d_forward_kernel, cuda_grid_for(n * kWarpSize), kCudaBlockSize, 0,
                 cuda_current_stream(), y, x, planes, in_h, in_w, out_h, out_w);
    CUDA_CHECK_LAUNCH();
}

void adaptive_avg_pool2d_backward_cuda(float* dx, const float* dy, int64_t planes, int64_t in_h, int64_t in_w,
                                       int64_t out_h, int64_t out_w) {
    int64_t n = planes * in_h * in_w;
    if (n == 0) return;
    CUEMU_LAUNCH(adaptive_avg_pool2d_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(),
                 dx, dy, planes, in_h, in_w, out_h, out_w);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(adaptive_avg_pool2d_forward, DeviceType::CUDA, adaptive_avg_pool2d_forward_cuda);
REGISTER_KERNEL(adaptive_avg_pool2d_backward, DeviceType::CUDA, adaptive_avg_pool2d_backward_cuda);

}  // namespace strata
