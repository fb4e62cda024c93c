// avgpool2d: 2-D average pooling over (N, C, H, W), with PyTorch's padding, ceil_mode and count_include_pad rules.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"
#include "layers/maxpool2d.h"  // Pool2dParams, pool2d_params: the window geometry is the same as max pooling's

namespace strata {

// The options, named as in torch.nn.AvgPool2d (divisor_override is not supported):
//     avgpool2d(x, {.kernel_size = 3, .stride = 2, .padding = 1, .count_include_pad = false})
struct AvgPool2dOptions {
    Size2 kernel_size;
    Size2 stride = 0;                // 0 (both sizes): kernel_size, PyTorch's default (stride=None)
    Size2 padding = 0;               // implicit zeros on each side; at most kernel_size / 2
    bool ceil_mode = false;          // round the output size up instead of down
    bool count_include_pad = true;   // divide by the window size including the padding (see avgpool2d.cpp)
};

// y[n, c, oh, ow] = sum of x[n, c] over the window of (oh, ow) / divisor. Output (N, C, OH, OW), sizes as in PyTorch.
Tensor avgpool2d(const Tensor& x, const AvgPool2dOptions& options);

// The AvgPool2d module (registry name "avgpool2d"; attributes kernel_size, stride, padding, ceil_mode,
// count_include_pad).
class AvgPool2d : public Module {
public:
    explicit AvgPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0, bool ceil_mode = false,
                       bool count_include_pad = true);
    Tensor forward(const Tensor& x) override { return avgpool2d(x, options); }
    std::string type_name() const override { return "AvgPool2d"; }

    AvgPool2dOptions options;
};

// Kernels. x, dx: (planes, in_h, in_w); y, dy: (planes, out_h, out_w).
using avgpool2d_forward_fn = void (*)(float* y, const float* x, bool count_include_pad, const Pool2dParams& p);
using avgpool2d_backward_fn = void (*)(float* dx, const float* dy, bool count_include_pad, const Pool2dParams& p);
extern KernelTable<avgpool2d_forward_fn> avgpool2d_forward;
extern KernelTable<avgpool2d_backward_fn> avgpool2d_backward;

}  // namespace strata
