// adaptive_avg_pool2d: PyTorch's F.adaptive_avg_pool2d on (N, C, H, W).
//
// The output size is fixed and the bins adapt to the input. Per axis, with input size I and output size O,
// output i averages the input range
//     [start(i), end(i)),   start(i) = floor(i * I / O),   end(i) = ceil((i + 1) * I / O)
// (PyTorch's start_index / end_index). Neighbouring bins may overlap by one element and differ in size when O
// does not divide I: at I = 13, O = 6 the bins are [0,3) [2,5) [4,7) [6,9) [8,11) [10,13). When O > I, bins of one
// element repeat (I = 2, O = 3: [0,1) [0,2) [1,2)). Every bin holds at least one element.
//
//   forward:   y[i, j]  = mean of x over rows [start(i), end(i)) x columns [start(j), end(j))
//   backward:  dx[h, w] = sum over the bins (i, j) that hold (h, w) of dy[i, j] / (area of bin (i, j))
//
// In PSPNet's pyramid pooling module the bins are 1, 2, 3 and 6 on a 60x60 (or 90x90) feature map; there they
// coincide with Caffe's fixed kernel = stride pooling, but the formula above is needed for any other size.
//
// NOTE: overlapping bins add into the same input element, so the backward kernel zeroes its plane of dx and then
// adds (+=) each bin's share. That sum is part of this op's own derivative, not autograd accumulation: dx is still
// written in full, and the engine accumulates as usual.
#include "layers/adaptive_avg_pool2d.h"

#include <algorithm>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<adaptive_avg_pool2d_forward_fn> adaptive_avg_pool2d_forward{"adaptive_avg_pool2d_forward"};
constinit KernelTable<adaptive_avg_pool2d_backward_fn> adaptive_avg_pool2d_backward{"adaptive_avg_pool2d_backward"};

namespace {

// Bin i of `out` bins over `in` elements (see the file comment); integer floor and ceil of i * in / out.
int64_t bin_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// Planes per parallel chunk: enough that a chunk reads ~16K input values, so small tensors stay on one thread.
int64_t plane_grain(int64_t in_h, int64_t in_w) { return 1 + (int64_t(1) << 14) / (in_h * in_w); }

// y: (planes, out_h, out_w); x: (planes, in_h, in_w)
void adaptive_avg_pool2d_forward_cpu(float* y, const float* x, int64_t planes, int64_t in_h, int64_t in_w,
                                     int64_t out_h, int64_t out_w) {
    parallel_for(0, planes, plane_grain(in_h, in_w), [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {
            const float* xp = x + plane * in_h * in_w;
            float* yp = y + plane * out_h * out_w;
            for (int64_t i = 0; i < out_h; ++i) {
                int64_t h0 = bin_start(i, in_h, out_h), h1 = bin_end(i, in_h, out_h);
                for (int64_t j = 0; j < out_w; ++j) {
                    int64_t w0 = bin_start(j, in_w, out_w), w1 = bin_end(j, in_w, out_w);
                    float sum = 0.0f;
                    for (int64_t h = h0; h < h1; ++h)
                        for (int64_t w = w0; w < w1; ++w) sum += xp[h * in_w + w];
                    yp[i * out_w + j] = sum / float((h1 - h0) * (w1 - w0));
                }
            }
        }
    });
}

// dx: (planes, in_h, in_w); dy: (planes, out_h, out_w)
void adaptive_avg_pool2d_backward_cpu(float* dx, const float* dy, int64_t planes, int64_t in_h, int64_t in_w,
                                      int64_t out_h, int64_t out_w) {
    parallel_for(0, planes, plane_grain(in_h, in_w), [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {
            float* dxp = dx + plane * in_h * in_w;
            const float* dyp = dy + plane * out_h * out_w;
            std::fill(dxp, dxp + in_h * in_w, 0.0f);
            for (int64_t i = 0; i < out_h; ++i) {
                int64_t h0 = bin_start(i, in_h, out_h), h1 = bin_end(i, in_h, out_h);
                for (int64_t j = 0; j < out_w; ++j) {
                    int64_t w0 = bin_start(j, in_w, out_w), w1 = bin_end(j, in_w, out_w);
                    float share = dyp[i * out_w + j] / float((h1 - h0) * (w1 - w0));
                    // overlapping bins add into the same dx (see the NOTE at the top)
                    for (int64_t h = h0; h < h1; ++h)
                        for (int64_t w = w0; w < w1; ++w) dxp[h * in_w + w] += share;
                }
            }
        }
    });
}

}  // namespace

REGISTER_KERNEL(adaptive_avg_pool2d_forward, DeviceType::CPU, adaptive_avg_pool2d_forward_cpu);
REGISTER_KERNEL(adaptive_avg_pool2d_backward, DeviceType::CPU, adaptive_avg_pool2d_backward_cpu);

namespace {
void check_output_size(const char* op, Size2 output_size) {
    STRATA_CHECK(output_size.h > 0 && output_size.w > 0, op, ": output_size must be positive, got (",
                 output_size.h, ", ", output_size.w, ")");
}
}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x_in, Size2 output_size) {
    const char* op = "adaptive_avg_pool2d";
    check_dtype(x_in, DType::F32, op, "input");
    check_dim(x_in, 4, op, "input", "(N,C,H,W)");
    STRATA_CHECK(x_in.size(1) > 0 && x_in.size(2) > 0 && x_in.size(3) > 0, op,
                 ": input must have non-zero C, H and W, got shape ", x_in.shape_string());
    check_output_size(op, output_size);
    Tensor x = x_in.contiguous();
    int64_t planes = x.size(0) * x.size(1), in_h = x.size(2), in_w = x.size(3);
    int64_t out_h = output_size.h, out_w = output_size.w;
    Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, DType::F32, x.device());
    adaptive_avg_pool2d_forward[x.device()](y.f32(), x.f32(), planes, in_h, in_w, out_h, out_w);
    if (any_requires_grad({x})) {
        Shape x_shape = x.shape();
        record(y, op, {x}, [x_shape, planes, in_h, in_w, out_h, out_w](const Tensor& dy_in,
                                                                        const std::vector<bool>& needs_grad) {
            if (!needs_grad[0]) return std::vector<Tensor>{Tensor()};
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty(x_shape, DType::F32, dy.device());
            adaptive_avg_pool2d_backward[dy.device()](dx.f32(), dy.f32(), planes, in_h, in_w, out_h, out_w);
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size) : output_size(output_size) {
    check_output_size("AdaptiveAvgPool2d", output_size);
}

namespace {

// {"output_size": 6 or [h, w]}
std::shared_ptr<Module> make_adaptive_avg_pool2d(Attrs& attrs) {
    std::vector<int64_t> size = attrs.get_ints("output_size", {}, 2);
    STRATA_CHECK(!size.empty(), "adaptive_avg_pool2d: missing required attribute 'output_size'");
    return std::make_shared<AdaptiveAvgPool2d>(Size2(size[0], size[1]));
}

}  // namespace

REGISTER_LAYER("adaptive_avg_pool2d", make_adaptive_avg_pool2d);

}  // namespace strata
