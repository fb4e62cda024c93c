// maxpool2d: 2-D max pooling over (N, C, H, W), with PyTorch's padding and ceil_mode rules.
//
// Also home of what maxpool2d and avgpool2d share: the resolved window geometry (Pool2dParams) and the function
// that checks the options and computes the output size as PyTorch does (pool2d_params).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// The options, named as in torch.nn.MaxPool2d. With C++20 designated initialisers a call reads like PyTorch's:
//     maxpool2d(x, {.kernel_size = 3, .stride = 2, .padding = 1})   // PSPNet's stem pool
//     maxpool2d(x, {.kernel_size = 2})                                // stride defaults to the kernel size
struct MaxPool2dOptions {
    Size2 kernel_size;
    Size2 stride = 0;             // 0 (both sizes): kernel_size, PyTorch's default (stride=None)
    Size2 padding = 0;            // implicit -inf on each side; at most kernel_size / 2
    bool ceil_mode = false;       // round the output size up instead of down
};

// y[n, c, oh, ow] = max of x[n, c] over the window of (oh, ow). Output (N, C, OH, OW), sizes as in PyTorch.
Tensor maxpool2d(const Tensor& x, const MaxPool2dOptions& options);

// The MaxPool2d module (registry name "maxpool2d"; attributes kernel_size, stride, padding, ceil_mode).
class MaxPool2d : public Module {
public:
    explicit MaxPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0, bool ceil_mode = false);
    Tensor forward(const Tensor& x) override { return maxpool2d(x, options); }
    std::string type_name() const override { return "MaxPool2d"; }

    MaxPool2dOptions options;
};

// ---- shared with avgpool2d ----

// One pooling sweep with every size resolved. Output (oh, ow) reads the input window whose top-left corner is
// (oh * stride_h - pad_h, ow * stride_w - pad_w) and whose size is kernel_h x kernel_w, clipped to the input.
struct Pool2dParams {
    int64_t planes;  // N * C: every (n, c) plane is pooled on its own
    int64_t in_h, in_w;
    int64_t out_h, out_w;
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
};

// Checks kernel_size > 0, stride > 0 or (0, 0), and 0 <= padding <= kernel_size / 2 (PyTorch's rules); errors
// name `op`.
void check_pool2d_options(const char* op, Size2 kernel_size, Size2 stride, Size2 padding);
// Checks x (F32, 4-D, non-empty C, H, W) and the options, and computes the output size as PyTorch does.
// A stride of (0, 0) means kernel_size.
Pool2dParams pool2d_params(const char* op, const Tensor& x, Size2 kernel_size, Size2 stride, Size2 padding,
                           bool ceil_mode);

// The registry attributes both pooling layers share: {"kernel_size": 3 or [kh, kw] (required), "stride": (default
// kernel_size), "padding": 0, "ceil_mode": false}.
struct Pool2dAttrs {
    Size2 kernel_size, stride, padding;
    bool ceil_mode = false;
};
class Attrs;  // framework/registry.h
Pool2dAttrs read_pool2d_attrs(Attrs& attrs, const char* layer);

// ---- kernels ----
// x, dx: (planes, in_h, in_w); y, dy, indices: (planes, out_h, out_w). indices[o] is the flat position
// h * in_w + w inside its plane of the input element that won output o.
using maxpool2d_forward_fn = void (*)(float* y, int32_t* indices, const float* x, const Pool2dParams& p);
using maxpool2d_backward_fn = void (*)(float* dx, const float* dy, const int32_t* indices, const Pool2dParams& p);
extern KernelTable<maxpool2d_forward_fn> maxpool2d_forward;
extern KernelTable<maxpool2d_backward_fn> maxpool2d_backward;

}  // namespace strata
