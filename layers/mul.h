// mul: y = s * x, a tensor times a float scalar.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/tensor.h"

namespace strata {

Tensor mul(const Tensor& x, float s);
Tensor operator*(const Tensor& x, float s);
Tensor operator*(float s, const Tensor& x);

// Kernel, used by the forward (y = s * x) and the backward (dx = s * dy). n = number of elements.
using mul_forward_fn = void (*)(float* y, const float* x, float s, int64_t n);
extern KernelTable<mul_forward_fn> mul_forward;

}  // namespace strata
