// upsample_bilinear2d on the GPU: the CUDA twins of the kernels in layers/upsample_bilinear2d.cpp (the source
// coordinates of both align_corners modes, the scale rules and the NOTEs are there; the op computes the scales).
//
//   forward:   y[oh, ow] = l0h * (l0w * x[i0h, i0w] + l1w * x[i0h, i1w])
//                        + l1h * (l0w * x[i1h, i0w] + l1w * x[i1h, i1w])
//   backward:  dx[ih, iw] = sum over the outputs (oh, ow) that read (ih, iw) of (their weight for it) * dy[oh, ow]
//
// Forward: one thread per output element in a grid-stride loop.
// Backward: a gather, one thread per INPUT element, instead of the CPU's scatter of four weighted gradients per
// output (which on a GPU would need atomicAdd: neighbouring outputs share source pixels, and atomics would make the
// sums depend on timing). Along one axis the source index i0(o) never decreases with o, so the outputs that read
// input row ih are the run of oh with i0(oh) in {ih - 1, ih}; the thread finds its run of rows and of columns by
// binary search on the tap function, then adds the contributions in increasing (oh, ow), and within one output in
// the CPU's tap order: the order in which the CPU's scatter reaches this element. Each block first puts the column
// taps of the whole output width into shared memory (when out_w taps fit in 48 KiB), so that the inner loop, which
// runs (out/in)^2 times per thread, loads its column tap instead of computing it.
//
// Rounding: the same operations in the same order as the CPU, but either compiler may contract a * b + c into a
// fused multiply-add (nvcc does by default; g++ does too in C++ with -march=native), so results agree within a few
// ulps, not bitwise (the test's tolerance says how much). The source coordinate alone is computed with
// __fmul_rn / __fadd_rn, which are never contracted: every call of linear_tap (forward, binary search, gather
// loop) then gives the same taps, so the gather's runs agree with the taps it uses.
//
// Both kernels are memory-bound. The forward reads 4 inputs per output (from L1/L2: neighbouring outputs share
// them) and writes one float. The backward reads each dy about 4 times (from L1/L2) and writes dx once; its work
// per thread is the number of outputs per input pixel, (out/in)^2: 64 for PSPNet's x8 zoom, 3600 for the
// pyramid's 1x1 branch, where few threads with long serial loops leave the GPU under-occupied (see the perf notes).
#include "cuda/backend.h"
#include "layers/upsample_bilinear2d.h"

namespace strata {

namespace {

// The two source neighbours of one output index along one axis and their weights: linear_tap() of
// layers/upsample_bilinear2d.cpp, with the same operations in the same order (std::max and std::clamp written out
// as they are defined). Indices inside a plane are int here (the launchers check that they fit): 64-bit
// integer compares and float <-> int64 conversions cost several instructions each on a GPU, and the backward's
// inner loop computes a tap per term.
struct LinearTap {
    int i0, i1;
    float w0, w1;
};

__device__ LinearTap linear_tap(int o, float scale, int in_size, bool align_corners) {
    float src;
    if (align_corners) {
        src = __fmul_rn(scale, float(o));
    } else {
        src = __fadd_rn(__fmul_rn(scale, __fadd_rn(float(o), 0.5f)), -0.5f);
        src = src < 0.0f ? 0.0f : src;
    }
    LinearTap t;
    t.i0 = min(int(src), in_size - 1);  // floor, as src >= 0
    t.i1 = t.i0 < in_size - 1 ? t.i0 + 1 : t.i0;
    float w1 = __fadd_rn(src, -float(t.i0));
    t.w1 = w1 < 0.0f ? 0.0f : (1.0f < w1 ? 1.0f : w1);
    t.w0 = __fadd_rn(1.0f, -t.w1);
    return t;
}

// y: (planes, out_h, out_w); x: (planes, in_h, in_w)
__global__ void upsample_bilinear2d_forward_kernel(float* y, const float* x, int64_t planes, int in_h, int in_w,
                                                   int out_h, int out_w, float scale_h, float scale_w,
                                                   bool align_corners) {
    int64_t plane_size = int64_t(out_h) * out_w, n = planes * plane_size;
    for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = o / plane_size;
        int at = int(o - plane * plane_size);
        int oh = at / out_w, ow = at - oh * out_w;
        LinearTap th = linear_tap(oh, scale_h, in_h, align_corners);
        LinearTap tw = linear_tap(ow, scale_w, in_w, align_corners);
        const float* x0 = x + (plane * in_h + th.i0) * in_w;  // the two source rows
        const float* x1 = x + (plane * in_h + th.i1) * in_w;
        y[o] = th.w0 * (tw.w0 * x0[tw.i0] + tw.w1 * x0[tw.i1]) + th.w1 * (tw.w0 * x1[tw.i0] + tw.w1 * x1[tw.i1]);
    }
}

// The first output index o in [0, out) whose tap has i0(o) >= target (out when there is none). i0 never decreases
// with o (src is a monotone function of o in float arithmetic too), so a binary search finds it.
__device__ int first_tap_at_least(int target, int out, float scale, int in_size, bool align_corners) {
    int lo = 0, hi = out;  // the answer is in [lo, hi]
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (linear_tap(mid, scale, in_size, align_corners).i0 >= target)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

// dx: (planes, in_h, in_w); dy: (planes, out_h, out_w). With use_table, the launch gives out_w LinearTaps of
// dynamic shared memory: the block first computes the column taps of every ow once, so that the inner loop reads a
// tap instead of computing it (about half of the loop's instructions); without it (very wide outputs) every term
// computes its own.
__global__ void upsample_bilinear2d_backward_kernel(float* dx, const float* dy, int64_t planes, int in_h, int in_w,
                                                    int out_h, int out_w, float scale_h, float scale_w,
                                                    bool align_corners, bool use_table) {
    CUEMU_DYNAMIC_SHARED(LinearTap, column_taps);
    if (use_table) {  // the same for the whole launch, so every thread reaches the barrier
        for (int ow = threadIdx.x; ow < out_w; ow += blockDim.x)
            column_taps[ow] = linear_tap(ow, scale_w, in_w, align_corners);
        __syncthreads();
    }
    int64_t plane_size = int64_t(in_h) * in_w, n = planes * plane_size;
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
        // (plane, row, column) of the flat index with two integer divisions, each a dozen instructions on a GPU
        int64_t plane = t / plane_size;
        int at = int(t - plane * plane_size);
        int ih = at / in_w, iw = at - ih * in_w;
        const float* dyp = dy + plane * out_h * out_w;
        // The outputs that read row ih: i0(oh) == ih - 1 (then i1 == ih) or i0(oh) == ih. Same for the columns.
        int oh0 = first_tap_at_least(ih - 1, out_h, scale_h, in_h, align_corners);
        int oh1 = first_tap_at_least(ih + 1, out_h, scale_h, in_h, align_corners);
        int ow0 = first_tap_at_least(iw - 1, out_w, scale_w, in_w, align_corners);
        int ow1 = first_tap_at_least(iw + 1, out_w, scale_w, in_w, align_corners);
        float sum = 0.0f;
        for (int oh = oh0; oh < oh1; ++oh) {
            LinearTap th = linear_tap(oh, scale_h, in_h, align_corners);
            const float* dy_row = dyp + int64_t(oh) * out_w;
            for (int ow = ow0; ow < ow1; ++ow) {
                LinearTap tw = use_table ? column_taps[ow] : linear_tap(ow, scale_w, in_w, align_corners);
                float g = dy_row[ow];
                // the CPU's four additions for this output, in its order, keeping those that land on (ih, iw)
                if (th.i0 == ih) {
                    if (tw.i0 == iw) sum += th.w0 * tw.w0 * g;
                    if (tw.i1 == iw) sum += th.w0 * tw.w1 * g;
                }
                if (th.i1 == ih) {
                    if (tw.i0 == iw) sum += th.w1 * tw.w0 * g;
                    if (tw.i1 == iw) sum += th.w1 * tw.w1 * g;
                }
            }
        }
        dx[t] = sum;
    }
}

// The kernels index inside a plane with int: the planes must have fewer than 2^31 elements.
void check_sizes_fit_int(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) {
    const int64_t limit = INT32_MAX;
    STRATA_CHECK(in_h * in_w <= limit && out_h * out_w <= limit, "upsample_bilinear2d: the CUDA kernels need ",
                 "planes of fewer than 2^31 elements, got input ", in_h, "x", in_w, " and output ", out_h, "x", out_w);
}

void upsample_bilinear2d_forward_cuda(float* y, const float* x, int64_t planes, int64_t in_h, int64_t in_w,
                                      int64_t out_h, int64_t out_w, float scale_h, float scale_w,
                                      bool align_corners) {
    int64_t n = planes * out_h * out_w;
    if (n == 0) return;
    check_sizes_fit_int(in_h, in_w, out_h, out_w);
    CUEMU_LAUNCH(upsample_bilinear2d_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y,
                 x, planes, int(in_h), int(in_w), int(out_h), int(out_w), scale_h, scale_w, align_corners);
    CUDA_CHECK_LAUNCH();
}

void upsample_bilinear2d_backward_cuda(float* dx, const float* dy, int64_t planes, int64_t in_h, int64_t in_w,
                                       int64_t out_h, int64_t out_w, float scale_h, float scale_w,
                                       bool align_corners) {
    int64_t n = planes * in_h * in_w;
    if (n == 0) return;
    check_sizes_fit_int(in_h, in_w, out_h, out_w);
    // the column-tap table, when it fits in the 48 KiB of shared memory a block gets without opting in
    size_t table_bytes = size_t(out_w) * sizeof(LinearTap);
    bool use_table = table_bytes <= 48 * 1024;
    CUEMU_LAUNCH(upsample_bilinear2d_backward_kernel, cuda_grid_for(n), kCudaBlockSize, use_table ? table_bytes : 0,
                 cuda_current_stream(), dx, dy, planes, int(in_h), int(in_w), int(out_h), int(out_w), scale_h,
                 scale_w, align_corners, use_table);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(upsample_bilinear2d_forward, DeviceType::CUDA, upsample_bilinear2d_forward_cuda);
REGISTER_KERNEL(upsample_bilinear2d_backward, DeviceType::CUDA, upsample_bilinear2d_backward_cuda);

}  // namespace strata
