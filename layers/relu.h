// relu: y = max(0, x), elementwise.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

Tensor relu(const Tensor& x);

// The ReLU module (registry name "relu", no attributes).
class ReLU : public Module {
public:
    Tensor forward(const Tensor& x) override { return relu(x); }
    std::string type_name() const override { return "ReLU"; }
};

// Kernels. n = number of elements.
using relu_forward_fn = void (*)(float* y, const float* x, int64_t n);
using relu_backward_fn = void (*)(float* dx, const float* dy, const float* x, int64_t n);
extern KernelTable<relu_forward_fn> relu_forward;
extern KernelTable<relu_backward_fn> relu_backward;

}  // namespace strata
