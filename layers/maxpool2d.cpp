// maxpool2d: 2-D max pooling, PyTorch's F.max_pool2d (dilation 1) on (N, C, H, W).
//
// Windows. Output (oh, ow) of every (n, c) plane looks at input rows [oh*sH - pH, oh*sH - pH + kH) and columns
// [ow*sW - pW, ow*sW - pW + kW). The padding is implicit -inf, so it never wins; in practice the window is just
// clipped to the input.
//
// Output size (PyTorch's pooling_output_shape), per axis with input size I, kernel k, stride s, padding p:
//     floor mode:  O = floor((I + 2p - k) / s) + 1
//     ceil mode:   O = ceil((I + 2p - k) / s) + 1, then O -= 1 if the last window would start at or past
//                  I + p, i.e. inside the right padding only: every window must start inside the input or the
//                  left padding. (With p <= k/2, which is checked, every window then holds an input element.)
//
//   forward:   y[o] = max over the window of o of x,   indices[o] = the position of that maximum in its plane
//   backward:  dx[i] = sum of dy[o] over the outputs o with indices[o] == i      (0 where no window chose i)
//
// NOTE: ties go to the first maximum in scan order (row by row), and a NaN wins over everything and propagates
// (the last NaN of the window gives the index), exactly as PyTorch's CPU kernel (`val > max || isnan(val)`). The
// gradient of a tie is a subgradient, as in PyTorch.
// NOTE: overlapping windows (stride < kernel, e.g. PSPNet's 3x3 stride 2) can pick the same input element, so
// the backward kernel zeroes its plane of dx and then adds (+=) dy at each argmax. That sum is part of this op's
// own derivative, not autograd accumulation: dx is still written in full, and the engine accumulates as usual.
#include "layers/maxpool2d.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<maxpool2d_forward_fn> maxpool2d_forward{"maxpool2d_forward"};
constinit KernelTable<maxpool2d_backward_fn> maxpool2d_backward{"maxpool2d_backward"};

namespace {

// floor(a / b) for b > 0 and any sign of a (C++'s / rounds toward zero).
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// PyTorch's pooling_output_shape for one axis (see the file comment).
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
    int64_t out = floor_div(in + 2 * pad - kernel + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
}

// Planes per parallel chunk: enough that a chunk reads ~16K input values, so small tensors stay on one thread.
int64_t plane_grain(const Pool2dParams& p) { return 1 + (int64_t(1) << 14) / (p.in_h * p.in_w); }

// The output columns [lo, hi) whose window holds input column ow*stride - pad + j (kernel column j) inside the
// input: ow*stride - pad + j >= 0 and <= in_w - 1.
struct TapColumns {
    int64_t lo, hi;
};

TapColumns tap_columns(const Pool2dParams& p, int64_t j) {
    const int64_t first = p.pad_w - j, last = p.in_w - 1 + p.pad_w - j;  // ow*stride must lie in [first, last]
    const int64_t lo = first > 0 ? (first + p.stride_w - 1) / p.stride_w : 0;
    const int64_t hi = last < 0 ? 0 : last / p.stride_w + 1;
    return {std::min(lo, p.out_w), std::max(std::min(lo, p.out_w), std::min(hi, p.out_w))};
}

// y, indices: (planes, out_h, out_w); x: (planes, in_h, in_w)
// One output row at a time, tap by tap: for kernel row h and column j, every output column whose window holds that
// input element compares it with its best so far. Each output still sees its window in scan order (rows, then
// columns), so ties and NaNs come out as above; but the loop over output columns has no branch and vectorises
// (with the window loop innermost, which element wins is unpredictable and the mispredicted branches made the 3x3
// stride-2 stem pool of psp18w32 cost several ns per output).
void maxpool2d_forward_cpu(float* y, int32_t* indices, const float* x, const Pool2dParams& p) {
    parallel_for(0, p.planes, plane_grain(p), [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {
            const float* xp = x + plane * p.in_h * p.in_w;
            for (int64_t oh = 0; oh < p.out_h; ++oh) {
                // the window's rows, clipped to the input (the -inf padding never wins)
                int64_t h0 = oh * p.stride_h - p.pad_h;
                const int64_t h1 = std::min(h0 + p.kernel_h, p.in_h);
                h0 = std::max<int64_t>(h0, 0);
                float* yrow = y + (plane * p.out_h + oh) * p.out_w;
                int32_t* irow = indices + (plane * p.out_h + oh) * p.out_w;
                // Start below every value, pointing at the window's first element: a window of -inf's then reports
                // that element, as PyTorch does.
                for (int64_t ow = 0; ow < p.out_w; ++ow) {
                    yrow[ow] = -std::numeric_limits<float>::infinity();
                    irow[ow] = int32_t(h0 * p.in_w + std::max<int64_t>(ow * p.stride_w - p.pad_w, 0));
                }
                for (int64_t h = h0; h < h1; ++h) {
                    for (int64_t j = 0; j < p.kernel_w; ++j) {
                        const TapColumns c = tap_columns(p, j);
                        // the tap's position in the plane for output column ow is offset + ow * stride (>= 0 for
                        // ow in [c.lo, c.hi); offset itself may be negative)
                        const int64_t offset = h * p.in_w + j - p.pad_w, stride = p.stride_w;
#pragma omp simd
                        for (int64_t ow = c.lo; ow < c.hi; ++ow) {
                            const float v = xp[offset + ow * stride];
                            const bool wins = (v > yrow[ow]) | (v != v);  // strict >: ties keep the first; NaN wins
                            yrow[ow] = wins ? v : yrow[ow];
                            irow[ow] = wins ? int32_t(offset + ow * stride) : irow[ow];
                        }
                    }
                }
            }
        }
    });
}

// dx: (planes, in_h, in_w); dy, indices: (planes, out_h, out_w)
void maxpool2d_backward_cpu(float* dx, const float* dy, const int32_t* indices, const Pool2dParams& p) {
    parallel_for(0, p.planes, plane_grain(p), [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {
            float* dxp = dx + plane * p.in_h * p.in_w;
            const float* dyp = dy + plane * p.out_h * p.out_w;
            const int32_t* ip = indices + plane * p.out_h * p.out_w;
            std::fill(dxp, dxp + p.in_h * p.in_w, 0.0f);
            // several outputs may share an argmax: their gradients add up (see the NOTE at the top)
            for (int64_t o = 0; o < p.out_h * p.out_w; ++o) dxp[ip[o]] += dyp[o];
        }
    });
}

}  // namespace

REGISTER_KERNEL(maxpool2d_forward, DeviceType::CPU, maxpool2d_forward_cpu);
REGISTER_KERNEL(maxpool2d_backward, DeviceType::CPU, maxpool2d_backward_cpu);

Pool2dAttrs read_pool2d_attrs(Attrs& attrs, const char* layer) {
    std::vector<int64_t> k = attrs.get_ints("kernel_size", {}, 2);
    STRATA_CHECK(!k.empty(), layer, ": missing required attribute 'kernel_size'");
    std::vector<int64_t> s = attrs.get_ints("stride", k, 2);
    STRATA_CHECK(s[0] > 0 && s[1] > 0, layer, ": attribute 'stride' must be positive, got (", s[0], ", ", s[1], ")");
    std::vector<int64_t> pad = attrs.get_ints("padding", {0, 0}, 2);
    return {Size2(k[0], k[1]), Size2(s[0], s[1]), Size2(pad[0], pad[1]), attrs.get_bool("ceil_mode", false)};
}

void check_pool2d_options(const char* op, Size2 kernel_size, Size2 stride, Size2 padding) {
    Size2 k = kernel_size;
    STRATA_CHECK(k.h > 0 && k.w > 0, op, ": kernel_size must be positive, got (", k.h, ", ", k.w, ")");
    STRATA_CHECK((stride.h > 0 && stride.w > 0) || stride == Size2(0), op, ": stride must be positive (or (0, 0) ",
                 "for kernel_size), got (", stride.h, ", ", stride.w, ")");
    Size2 pad = padding;
    STRATA_CHECK(pad.h >= 0 && pad.w >= 0, op, ": padding must be non-negative, got (", pad.h, ", ", pad.w, ")");
    STRATA_CHECK(pad.h <= k.h / 2 && pad.w <= k.w / 2, op, ": padding should be at most half of kernel_size, got ",
                 "padding (", pad.h, ", ", pad.w, ") and kernel_size (", k.h, ", ", k.w, ")");
}

Pool2dParams pool2d_params(const char* op, const Tensor& x, Size2 kernel_size, Size2 stride, Size2 padding,
                           bool ceil_mode) {
    check_dtype(x, DType::F32, op, "input");
    check_dim(x, 4, op, "input", "(N,C,H,W)");
    STRATA_CHECK(x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0, op, ": input must have non-zero C, H and W, got ",
                 "shape ", x.shape_string());
    check_pool2d_options(op, kernel_size, stride, padding);
    Size2 s = stride == Size2(0) ? kernel_size : stride;

    Pool2dParams p;
    p.planes = x.size(0) * x.size(1);
    p.in_h = x.size(2);
    p.in_w = x.size(3);
    p.kernel_h = kernel_size.h;
    p.kernel_w = kernel_size.w;
    p.stride_h = s.h;
    p.stride_w = s.w;
    p.pad_h = padding.h;
    p.pad_w = padding.w;
    p.out_h = pool_output_size(p.in_h, p.kernel_h, p.stride_h, p.pad_h, ceil_mode);
    p.out_w = pool_output_size(p.in_w, p.kernel_w, p.stride_w, p.pad_w, ceil_mode);
    STRATA_CHECK(p.out_h >= 1 && p.out_w >= 1, op, ": input of size ", p.in_h, "x", p.in_w, " is too small for ",
                 "kernel_size (", p.kernel_h, ", ", p.kernel_w, ") with padding (", p.pad_h, ", ", p.pad_w,
                 "): the output would be ", p.out_h, "x", p.out_w);
    return p;
}

Tensor maxpool2d(const Tensor& x_in, const MaxPool2dOptions& options) {
    Pool2dParams p =
        pool2d_params("maxpool2d", x_in, options.kernel_size, options.stride, options.padding, options.ceil_mode);
    STRATA_CHECK(p.in_h * p.in_w <= std::numeric_limits<int32_t>::max(), "maxpool2d: an input plane of ", p.in_h,
                 "x", p.in_w, " elements is too large for the I32 argmax indices");
    Tensor x = x_in.contiguous();
    Shape out_shape{x.size(0), x.size(1), p.out_h, p.out_w};
    Tensor y = empty(out_shape, DType::F32, x.device());
    Tensor indices = empty(out_shape, DType::I32, x.device());  // saved for the backward
    maxpool2d_forward[x.device()](y.f32(), indices.i32(), x.f32(), p);
    if (any_requires_grad({x})) {
        Shape x_shape = x.shape();
        record(y, "maxpool2d", {x}, [indices, p, x_shape](const Tensor& dy_in, const std::vector<bool>& needs_grad) {
            if (!needs_grad[0]) return std::vector<Tensor>{Tensor()};
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty(x_shape, DType::F32, dy.device());
            maxpool2d_backward[dy.device()](dx.f32(), dy.f32(), indices.i32(), p);
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

MaxPool2d::MaxPool2d(Size2 kernel_size, Size2 stride, Size2 padding, bool ceil_mode)
    : options{kernel_size, stride, padding, ceil_mode} {
    check_pool2d_options("MaxPool2d", kernel_size, stride, padding);
}

namespace {

// {"kernel_size": 3 or [kh, kw], "stride": (default kernel_size), "padding": 0, "ceil_mode": false}
std::shared_ptr<Module> make_maxpool2d(Attrs& attrs) {
    Pool2dAttrs a = read_pool2d_attrs(attrs, "maxpool2d");
    return std::make_shared<MaxPool2d>(a.kernel_size, a.stride, a.padding, a.ceil_mode);
}

}  // namespace

REGISTER_LAYER("maxpool2d", make_maxpool2d);

}  // namespace strata
