// relu: y = max(0, x), elementwise.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

Tensor relu(const Tensor& x);

// The ReLU module (registry name "relu", no attributes). `fused` is set by fuse_batchnorm_relu (layers/batchnorm2d.h)
// when the module before it in a Sequential, a BatchNorm2d, applies this ReLU itself: forward then passes x through.
class ReLU : public Module {
public:
    Tensor forward(const Tensor& x) override { return fused ? x : relu(x); }
    std::string type_name() const override { return "ReLU"; }
    bool fused = false;
};

// Kernels. n = number of elements. dx may be dy (in place). relu_backward with x = y, the output, is the same
// mask ([y > 0] = [x > 0]); batchnorm2d_relu uses it so.
using relu_forward_fn = void (*)(float* y, const float* x, int64_t n);
using relu_backward_fn = void (*)(float* dx, const float* dy, const float* x, int64_t n);
extern KernelTable<relu_forward_fn> relu_forward;
extern KernelTable<relu_backward_fn> relu_backward;

}  // namespace strata
