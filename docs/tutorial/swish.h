// swish (SiLU): y = x * sigmoid(x), elementwise. The layer docs/adding_a_layer.md builds, as a plugin
// (`make plugin SRC=my_layers/swish.cpp`) or in the tree (layers/swish.h, layers/swish.cpp, cuda/swish.cu).
#pragma once

#include <cstdint>

#include "strata.h"

namespace strata {

Tensor swish(const Tensor& x);

// The module (registry name "swish", no attributes).
class Swish : public Module {
public:
    Tensor forward(const Tensor& x) override { return swish(x); }
    std::string type_name() const override { return "Swish"; }
};

// Kernels. n = number of elements.
using swish_forward_fn = void (*)(float* y, const float* x, int64_t n);
using swish_backward_fn = void (*)(float* dx, const float* dy, const float* x, int64_t n);
extern KernelTable<swish_forward_fn> swish_forward;
extern KernelTable<swish_backward_fn> swish_backward;

}  // namespace strata
