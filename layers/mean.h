// mean: the average of all elements, or along one dimension.
#pragma once

#include <cstdint>

#include "framework/tensor.h"

namespace strata {

// All elements -> a 0-D tensor (shape {}). An empty input is an error.
Tensor mean(const Tensor& x);
// Along dimension `dim` (negative counts from the end); keepdim as in PyTorch. A reduced size of 0 is an error.
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace strata
