// upsample_bilinear2d: bilinear resize of an (N, C, H, W) tensor, exactly as PyTorch's
// F.interpolate(mode='bilinear') (align_corners true or false, no antialiasing).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// Resizes x (N, C, H, W) to (N, C, output_size.h, output_size.w).
Tensor upsample_bilinear2d(const Tensor& x, Size2 output_size, bool align_corners);
// Resizes by a factor per axis: the output is floor(H * scale_h) x floor(W * scale_w). With align_corners false the
// coordinate mapping uses 1/scale (not H/out), as F.interpolate(scale_factor=...) does in PyTorch 1.13.
Tensor upsample_bilinear2d_scale(const Tensor& x, double scale_h, double scale_w, bool align_corners);

// The module (registry name "upsample_bilinear2d"; attributes: exactly one of size (int or [h, w]) and
// scale_factor (number or [h, w]), and align_corners (default false)). PyTorch: nn.Upsample(mode='bilinear').
class UpsampleBilinear2d : public Module {
public:
    UpsampleBilinear2d(Size2 output_size, bool align_corners);
    UpsampleBilinear2d(double scale_h, double scale_w, bool align_corners);
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "UpsampleBilinear2d"; }

private:
    Size2 output_size_;               // used when scale_h_ == 0
    double scale_h_ = 0, scale_w_ = 0;
    bool align_corners_ = false;
};

// Kernels. x is (planes, in_h, in_w) and y is (planes, out_h, out_w), planes = N * C. scale_h and scale_w map an
// output index to a source coordinate (see the file comment of upsample_bilinear2d.cpp); the op computes them.
using upsample_bilinear2d_forward_fn = void (*)(float* y, const float* x, int64_t planes, int64_t in_h, int64_t in_w,
                                                int64_t out_h, int64_t out_w, float scale_h, float scale_w,
                                                bool align_corners);
using upsample_bilinear2d_backward_fn = void (*)(float* dx, const float* dy, int64_t planes, int64_t in_h,
                                                 int64_t in_w, int64_t out_h, int64_t out_w, float scale_h,
                                                 float scale_w, bool align_corners);
extern KernelTable<upsample_bilinear2d_forward_fn> upsample_bilinear2d_forward;
extern KernelTable<upsample_bilinear2d_backward_fn> upsample_bilinear2d_backward;

}  // namespace strata
