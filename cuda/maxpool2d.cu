// maxpool2d on the GPU: the CUDA twins of the kernels in layers/maxpool2d.cpp (the windows, the output size and
// the tie and NaN rules are there).
//
//   forward:   y[o] = max over the window of o of x,   indices[o] = the position of that maximum in its plane
//   backward:  dx[i] = sum of dy[o] over the outputs o whose window holds i and whose indices[o] == i
//
// Forward: one thread per output element in a grid-stride loop. Each thread scans its window in the CPU's order
// (row by row) with the CPU's test `v > best || isnan(v)`, so values and argmax indices are identical to the CPU's:
// ties keep the first maximum, the last NaN of a window wins, a window of -inf reports its first element.
// Backward: a gather, one thread per INPUT element, instead of the CPU's scatter (dx[indices[o]] += dy[o]), which
// would need atomicAdd on a GPU because overlapping windows (PSPNet's 3x3 stride 2) can pick the same element.
// The thread visits the outputs whose windows contain its element in increasing o, the order in which the CPU adds
// them, so dx is bitwise equal to the CPU's too, and no atomics make the result order-dependent.
//
// Both kernels are memory-bound: the forward reads each input about (kernel/stride)^2 times, mostly from L1/L2, and
// writes 8 bytes per output; the backward reads the dy and indices of the few windows around its element.
#include "cuda/backend.h"
#include "layers/maxpool2d.h"

namespace strata {

namespace {

// y, indices: (p.planes, p.out_h, p.out_w); x: (p.planes, p.in_h, p.in_w)
__global__ void maxpool2d_forward_kernel(float* y, int32_t* indices, const float* x, Pool2dParams p) {
    int64_t n = p.planes * p.out_h * p.out_w;
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = o / (p.out_h * p.out_w), at = o - plane * (p.out_h * p.out_w);
        int64_t oh = at / p.out_w, ow = at - oh * p.out_w;
        const float* xp = x + plane * p.in_h * p.in_w;
        // the window, clipped to the input (the -inf padding never wins)
        int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
        int64_t h1 = min(h0 + p.kernel_h, p.in_h), w1 = min(w0 + p.kernel_w, p.in_w);
        h0 = max(h0, int64_t(0));
        w0 = max(w0, int64_t(0));
        float best = -INFINITY;
        int64_t best_index = h0 * p.in_w + w0;
        for (int64_t h = h0; h < h1; ++h) {
            for (int64_t w = w0; w < w1; ++w) {
                float v = xp[h * p.in_w + w];
                if (v > best || isnan(v)) {  // the CPU's test: ties keep the first, NaN wins
                    best = v;
                    best_index = h * p.in_w + w;
                }
            }
        }
        y[o] = best;
        indices[o] = int32_t(best_index);
    }
}

// The outputs along one axis whose windows [o*stride - pad, o*stride - pad + kernel) hold input index i:
// o in [first, last], clipped to [0, out). floor division, as i + pad - kernel may be negative.
__device__ int64_t first_window(int64_t i, int64_t kernel, int64_t stride, int64_t pad) {
    int64_t a = i + pad - kernel;  // o * stride > a
    int64_t floor_a = a >= 0 ? a / stride : -((-a + stride - 1) / stride);
    return max(floor_a + 1, int64_t(0));
}
__device__ int64_t last_window(int64_t i, int64_t stride, int64_t pad, int64_t out) {
    return min((i + pad) / stride, out - 1);  // o * stride <= i + pad
}

// dx: (p.planes, p.in_h, p.in_w); dy, indices: (p.planes, p.out_h, p.out_w)
__global__ void maxpool2d_backward_kernel(float* dx, const float* dy, const int32_t* indices, Pool2dParams p) {
    int64_t n = p.planes * p.in_h * p.in_w;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = i / (p.in_h * p.in_w), at = i - plane * (p.in_h * p.in_w);
        int64_t h = at / p.in_w, w = at - h * p.in_w;
        int64_t here = h * p.in_w + w;  // what indices[] says when this element won
        const float* dyp = dy + plane * p.out_h * p.out_w;
        const int32_t* ip = indices + plane * p.out_h * p.out_w;
        int64_t oh0 = first_window(h, p.kernel_h, p.stride_h, p.pad_h);
        int64_t oh1 = last_window(h, p.stride_h, p.pad_h, p.out_h);
        int64_t ow0 = first_window(w, p.kernel_w, p.stride_w, p.pad_w);
        int64_t ow1 = last_window(w, p.stride_w, p.pad_w, p.out_w);
        float sum = 0.0f;
        for (int64_t oh = oh0; oh <= oh1; ++oh)  // increasing o: the CPU's order of the additions
            for (int64_t ow = ow0; ow <= ow1; ++ow)
                if (ip[oh * p.out_w + ow] == here) sum += dyp[oh * p.out_w + ow];
        dx[i] = sum;
    }
}

void maxpool2d_forward_cuda(float* y, int32_t* indices, const float* x, const Pool2dParams& p) {
    int64_t n = p.planes * p.out_h * p.out_w;
    if (n == 0) return;
    CUEMU_LAUNCH(maxpool2d_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, indices, x,
                 p);
    CUDA_CHECK_LAUNCH();
}

void maxpool2d_backward_cuda(float* dx, const float* dy, const int32_t* indices, const Pool2dParams& p) {
    int64_t n = p.planes * p.in_h * p.in_w;
    if (n == 0) return;
    CUEMU_LAUNCH(maxpool2d_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dy,
                 indices, p);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(maxpool2d_forward, DeviceType::CUDA, maxpool2d_forward_cuda);
REGISTER_KERNEL(maxpool2d_backward, DeviceType::CUDA, maxpool2d_backward_cuda);

}  // namespace strata
