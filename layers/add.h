// add: y = a + b, elementwise, for two tensors of the same shape (ResNet's residual connection).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/tensor.h"

namespace strata {

// a and b must have the same shape (no broadcasting).
Tensor add(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, const Tensor& b);

// Kernel. n = number of elements.
using add_forward_fn = void (*)(float* y, const float* a, const float* b, int64_t n);
extern KernelTable<add_forward_fn> add_forward;

}  // namespace strata
