// avgpool2d: 2-D average pooling, PyTorch's F.avg_pool2d (no divisor_override) on (N, C, H, W).
//
// Windows and output size are max pooling's (layers/maxpool2d.cpp; pool2d_params computes them): output o of an
// axis covers [o*s - p, o*s - p + k), the padding is implicit zeros, and ceil_mode may add a last window that
// hangs over the right padding. What is particular to the average is the divisor. Per axis, PyTorch takes
//     padded window  = [o*s - p, min(o*s - p + k, I + p))   the window cut at the end of the right padding
//     input window   = the padded window cut to [0, I)       the elements actually summed
// and divides by the area of
//     count_include_pad = true:   the padded window (padding counts as zeros in the mean)
//     count_include_pad = false:  the input window (a mean of real elements only)
//
//   forward:   y[o]  = sum over the input window of o of x / divisor(o)
//   backward:  dx[i] = sum over the outputs o whose input window holds i of dy[o] / divisor(o)
//
// NOTE: the part of a ceil_mode window that hangs past the right padding is never counted, not even with
// count_include_pad: at I = 3, k = 2, s = 2, p = 0, ceil_mode gives a second window [2, 4) whose divisor is 1
// both ways, not 2. This is PyTorch's rule, kept for exact agreement.
// NOTE: windows overlap when stride < kernel, so the backward kernel zeroes its plane of dx and then adds (+=)
// each output's share into it. That sum is part of this op's own derivative, not autograd accumulation: dx is
// still written in full, and the engine accumulates as usual.
#include "layers/avgpool2d.h"

#include <algorithm>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<avgpool2d_forward_fn> avgpool2d_forward{"avgpool2d_forward"};
constinit KernelTable<avgpool2d_backward_fn> avgpool2d_backward{"avgpool2d_backward"};

namespace {

// The input window [h0, h1) x [w0, w1) of output (oh, ow) and the divisor of its mean (see the file comment).
// With padding <= kernel / 2 and the ceil_mode rule, the input window is never empty.
struct AvgWindow {
    int64_t h0, h1, w0, w1;
    float divisor;
};

AvgWindow avg_window(const Pool2dParams& p, int64_t oh, int64_t ow, bool count_include_pad) {
    int64_t h0 = oh * p.stride_h - p.pad_h;
    int64_t w0 = ow * p.stride_w - p.pad_w;
    int64_t h1 = std::min(h0 + p.kernel_h, p.in_h + p.pad_h);  // the padded window
    int64_t w1 = std::min(w0 + p.kernel_w, p.in_w + p.pad_w);
    int64_t padded_area = (h1 - h0) * (w1 - w0);
    AvgWindow win;
    win.h0 = std::max<int64_t>(h0, 0);  // the input window
    win.w0 = std::max<int64_t>(w0, 0);
    win.h1 = std::min(h1, p.in_h);
    win.w1 = std::min(w1, p.in_w);
    int64_t input_area = (win.h1 - win.h0) * (win.w1 - win.w0);
    win.divisor = float(count_include_pad ? padded_area : input_area);
    return win;
}

// Planes per parallel chunk: enough that a chunk reads ~16K input values, so small tensors stay on one thread.
int64_t plane_grain(const Pool2dParams& p) { return 1 + (int64_t(1) << 14) / (p.in_h * p.in_w); }

// y: (planes, out_h, out_w); x: (planes, in_h, in_w)
void avgpool2d_forward_cpu(float* y, const float* x, bool count_include_pad, const Pool2dParams& p) {
    parallel_for(0, p.planes, plane_grain(p), [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {
            const float* xp = x + plane * p.in_h * p.in_w;
            float* yp = y + plane * p.out_h * p.out_w;
            for (int64_t oh = 0; oh < p.out_h; ++oh) {
                for (int64_t ow = 0; ow < p.out_w; ++ow) {
                    AvgWindow win = avg_window(p, oh, ow, count_include_pad);
                    float sum = 0.0f;
                    for (int64_t h = win.h0; h < win.h1; ++h)
                        for (int64_t w = win.w0; w < win.w1; ++w) sum += xp[h * p.in_w + w];
                    yp[oh * p.out_w + ow] = sum / win.divisor;
                }
            }
        }
    });
}

// dx: (planes, in_h, in_w); dy: (planes, out_h, out_w)
void avgpool2d_backward_cpu(float* dx, const float* dy, bool count_include_pad, const Pool2dParams& p) {
    parallel_for(0, p.planes, plane_grain(p), [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {
            float* dxp = dx + plane * p.in_h * p.in_w;
            const float* dyp = dy + plane * p.out_h * p.out_w;
            std::fill(dxp, dxp + p.in_h * p.in_w, 0.0f);
            for (int64_t oh = 0; oh < p.out_h; ++oh) {
                for (int64_t ow = 0; ow < p.out_w; ++ow) {
                    AvgWindow win = avg_window(p, oh, ow, count_include_pad);
                    float share = dyp[oh * p.out_w + ow] / win.divisor;
                    // overlapping windows add into the same dx (see the NOTE at the top)
                    for (int64_t h = win.h0; h < win.h1; ++h)
                        for (int64_t w = win.w0; w < win.w1; ++w) dxp[h * p.in_w + w] += share;
                }
            }
        }
    });
}

}  // namespace

REGISTER_KERNEL(avgpool2d_forward, DeviceType::CPU, avgpool2d_forward_cpu);
REGISTER_KERNEL(avgpool2d_backward, DeviceType::CPU, avgpool2d_backward_cpu);

Tensor avgpool2d(const Tensor& x_in, const AvgPool2dOptions& options) {
    Pool2dParams p =
        pool2d_params("avgpool2d", x_in, options.kernel_size, options.stride, options.padding, options.ceil_mode);
    bool count_include_pad = options.count_include_pad;
    Tensor x = x_in.contiguous();
    Tensor y = empty({x.size(0), x.size(1), p.out_h, p.out_w}, DType::F32, x.device());
    avgpool2d_forward[x.device()](y.f32(), x.f32(), count_include_pad, p);
    if (any_requires_grad({x})) {
        Shape x_shape = x.shape();
        record(y, "avgpool2d", {x},
               [p, count_include_pad, x_shape](const Tensor& dy_in, const std::vector<bool>& needs_grad) {
                   if (!needs_grad[0]) return std::vector<Tensor>{Tensor()};
                   Tensor dy = dy_in.contiguous();
                   Tensor dx = empty(x_shape, DType::F32, dy.device());
                   avgpool2d_backward[dy.device()](dx.f32(), dy.f32(), count_include_pad, p);
                   return std::vector<Tensor>{dx};
               });
    }
    return y;
}

AvgPool2d::AvgPool2d(Size2 kernel_size, Size2 stride, Size2 padding, bool ceil_mode, bool count_include_pad)
    : options{kernel_size, stride, padding, ceil_mode, count_include_pad} {
    check_pool2d_options("AvgPool2d", kernel_size, stride, padding);
}

namespace {

// maxpool2d's attributes and "count_include_pad": true
std::shared_ptr<Module> make_avgpool2d(Attrs& attrs) {
    Pool2dAttrs a = read_pool2d_attrs(attrs, "avgpool2d");
    bool count_include_pad = attrs.get_bool("count_include_pad", true);
    return std::make_shared<AvgPool2d>(a.kernel_size, a.stride, a.padding, a.ceil_mode, count_include_pad);
}

}  // namespace

REGISTER_LAYER("avgpool2d", make_avgpool2d);

}  // namespace strata
