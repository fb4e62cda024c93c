// avgpool2d on the GPU: the CUDA twins of the kernels in layers/avgpool2d.cpp (the windows, the divisor rules of
// count_include_pad and ceil_mode, and their NOTEs are there).
//
//   forward:   y[o]  = sum over the input window of o of x / divisor(o)
//   backward:  dx[i] = sum over the outputs o whose input window holds i of dy[o] / divisor(o)
//
// Forward: one thread per output element in a grid-stride loop, summing its window row by row as the CPU does.
// Backward: a gather, one thread per INPUT element, instead of the CPU's scatter (which on a GPU would need
// atomicAdd, since windows overlap when stride < kernel). The thread visits the outputs whose windows hold its
// element in increasing o, the CPU's order, and adds the same shares dy[o] / divisor(o).
// There is no multiply-add to contract and division is IEEE-rounded (nvcc's default -prec-div=true), so both
// results are bitwise equal to the CPU's.
//
// Both kernels are memory-bound: each input is read by about (kernel/stride)^2 windows, mostly from L1/L2.
#include "cuda/backend.h"
#include "layers/avgpool2d.h"

namespace strata {

namespace {

// The input window [h0, h1) x [w0, w1) of output (oh, ow) and the divisor of its mean: avg_window() in
// layers/avgpool2d.cpp, line for line.
struct AvgWindow {
    int64_t h0, h1, w0, w1;
    float divisor;
};

__device__ AvgWindow avg_window(const Pool2dParams& p, int64_t oh, int64_t ow, bool count_include_pad) {
    int64_t h0 = oh * p.stride_h - p.pad_h;
    int64_t w0 = ow * p.stride_w - p.pad_w;
    int64_t h1 = min(h0 + p.kernel_h, p.in_h + p.pad_h);  // the padded window
    int64_t w1 = min(w0 + p.kernel_w, p.in_w + p.pad_w);
    int64_t padded_area = (h1 - h0) * (w1 - w0);
    AvgWindow win;
    win.h0 = max(h0, int64_t(0));  // the input window
    win.w0 = max(w0, int64_t(0));
    win.h1 = min(h1, p.in_h);
    win.w1 = min(w1, p.in_w);
    int64_t input_area = (win.h1 - win.h0) * (win.w1 - win.w0);
    win.divisor = float(count_include_pad ? padded_area : input_area);
    return win;
}

// y: (p.planes, p.out_h, p.out_w); x: (p.planes, p.in_h, p.in_w)
__global__ void avgpool2d_forward_kernel(float* y, const float* x, bool count_include_pad, Pool2dParams p) {
    int64_t n = p.planes * p.out_h * p.out_w;
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = o / (p.out_h * p.out_w), at = o - plane * (p.out_h * p.out_w);
        int64_t oh = at / p.out_w, ow = at - oh * p.out_w;
        const float* xp = x + plane * p.in_h * p.in_w;
        AvgWindow win = avg_window(p, oh, ow, count_include_pad);
        float sum = 0.0f;
        for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) sum += xp[h * p.in_w + w];
        y[o] = sum / win.divisor;
    }
}

// The outputs along one axis whose windows [o*stride - pad, o*stride - pad + kernel) hold input index i (which is
// inside the input, so the clipping of the windows does not matter): o in [first, last], clipped to [0, out).
__device__ int64_t first_window(int64_t i, int64_t kernel, int64_t stride, int64_t pad) {
    int64_t a = i + pad - kernel;  // o * stride > a; floor division, as a may be negative
    int64_t floor_a = a >= 0 ? a / stride : -((-a + stride - 1) / stride);
    return max(floor_a + 1, int64_t(0));
}
__device__ int64_t last_window(int64_t i, int64_t stride, int64_t pad, int64_t out) {
    return min((i + pad) / stride, out - 1);  // o * stride <= i + pad
}

// dx: (p.planes, p.in_h, p.in_w); dy: (p.planes, p.out_h, p.out_w)
__global__ void avgpool2d_backward_kernel(float* dx, const float* dy, bool count_include_pad, Pool2dParams p) {
    int64_t n = p.planes * p.in_h * p.in_w;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = i / (p.in_h * p.in_w), at = i - plane * (p.in_h * p.in_w);
        int64_t h = at / p.in_w, w = at - h * p.in_w;
        const float* dyp = dy + plane * p.out_h * p.out_w;
        int64_t oh0 = first_window(h, p.kernel_h, p.stride_h, p.pad_h);
        int64_t oh1 = last_window(h, p.stride_h, p.pad_h, p.out_h);
        int64_t ow0 = first_window(w, p.kernel_w, p.stride_w, p.pad_w);
        int64_t ow1 = last_window(w, p.stride_w, p.pad_w, p.out_w);
        float sum = 0.0f;
        for (int64_t oh = oh0; oh <= oh1; ++oh) {  // increasing o: the CPU's order of the additions
            for (int64_t ow = ow0; ow <= ow1; ++ow) {
                AvgWindow win = avg_window(p, oh, ow, count_include_pad);
                sum += dyp[oh * p.out_w + ow] / win.divisor;
            }
        }
        dx[i] = sum;
    }
}

void avgpool2d_forward_cuda(float* y, const float* x, bool count_include_pad, const Pool2dParams& p) {
    int64_t n = p.planes * p.out_h * p.out_w;
    if (n == 0) return;
    CUEMU_LAUNCH(avgpool2d_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, x,
                 count_include_pad, p);
    CUDA_CHECK_LAUNCH();
}

void avgpool2d_backward_cuda(float* dx, const float* dy, bool count_include_pad, const Pool2dParams& p) {
    int64_t n = p.planes * p.in_h * p.in_w;
    if (n == 0) return;
    CUEMU_LAUNCH(avgpool2d_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dy,
                 count_include_pad, p);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(avgpool2d_forward, DeviceType::CUDA, avgpool2d_forward_cuda);
REGISTER_KERNEL(avgpool2d_backward, DeviceType::CUDA, avgpool2d_backward_cuda);

}  // namespace strata
