// hard_swish, an example plugin (docs/plugins.md): y = x * relu6(x + 3) / 6, elementwise (MobileNetV3).
// Written exactly like an op of layers/: this header, hard_swish.cpp (math, CPU kernels, registration) and
// hard_swish.cu (the CUDA twin). `make plugin SRC=plugins/examples/hard_swish.cpp` builds build/plugins/hard_swish.so.
#pragma once

#include <cstdint>

#include "strata.h"

namespace strata {

Tensor hard_swish(const Tensor& x);

// The module (registry name "hard_swish", no attributes).
class HardSwish : public Module {
public:
    Tensor forward(const Tensor& x) override { return hard_swish(x); }
    std::string type_name() const override { return "HardSwish"; }
};

// Kernels. n = number of elements.
using hard_swish_forward_fn = void (*)(float* y, const float* x, int64_t n);
using hard_swish_backward_fn = void (*)(float* dx, const float* dy, const float* x, int64_t n);
extern KernelTable<hard_swish_forward_fn> hard_swish_forward;
extern KernelTable<hard_swish_backward_fn> hard_swish_backward;

}  // namespace strata
