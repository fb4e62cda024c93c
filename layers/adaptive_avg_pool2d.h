// adaptive_avg_pool2d: average pooling to a fixed output size, whatever the input size (PSPNet's pyramid pooling).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// (N, C, H, W) -> (N, C, output_size.h, output_size.w); each output is the mean of one bin of the input, with
// PyTorch's bin edges (see adaptive_avg_pool2d.cpp). The output may be larger than the input.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

// The AdaptiveAvgPool2d module (registry name "adaptive_avg_pool2d"; attribute output_size: an int or [h, w]).
class AdaptiveAvgPool2d : public Module {
public:
    explicit AdaptiveAvgPool2d(Size2 output_size);
    Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, output_size); }
    std::string type_name() const override { return "AdaptiveAvgPool2d"; }

    Size2 output_size;
};

// Kernels. x, dx: (planes, in_h, in_w); y, dy: (planes, out_h, out_w); planes = N * C.
using adaptive_avg_pool2d_forward_fn = void (*)(float* y, const float* x, int64_t planes, int64_t in_h,
                                                int64_t in_w, int64_t out_h, int64_t out_w);
using adaptive_avg_pool2d_backward_fn = void (*)(float* dx, const float* dy, int64_t planes, int64_t in_h,
                                                 int64_t in_w, int64_t out_h, int64_t out_w);
extern KernelTable<adaptive_avg_pool2d_forward_fn> adaptive_avg_pool2d_forward;
extern KernelTable<adaptive_avg_pool2d_backward_fn> adaptive_avg_pool2d_backward;

}  // namespace strata
