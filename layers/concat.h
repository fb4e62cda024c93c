// concat: joins tensors along one dimension (torch.cat).
#pragma once

#include <cstdint>
#include <vector>

#include "framework/dispatch.h"
#include "framework/tensor.h"

namespace strata {

// Concatenates xs along `dim` (negative counts from the end). All tensors must be F32, on one device, with the
// same number of dimensions and the same sizes except along `dim`. PSPNet joins the backbone features and the four
// pyramid branches along the channels: concat({x, p1, p2, p3, p6}, 1).
Tensor concat(const std::vector<Tensor>& xs, int64_t dim = 1);

// Kernels. Each tensor is seen as a matrix of `outer` rows (the product of the sizes before dim): a row of x holds
// x_cols = size(dim) * inner elements, a row of y holds y_cols. x occupies columns [col_offset, col_offset + x_cols)
// of y. The op calls the forward once per input, and the backward once per input that needs a gradient.
using concat_forward_fn = void (*)(float* y, const float* x, int64_t outer, int64_t x_cols, int64_t y_cols,
                                   int64_t col_offset);
using concat_backward_fn = void (*)(float* dx, const float* dy, int64_t outer, int64_t x_cols, int64_t y_cols,
                                    int64_t col_offset);
extern KernelTable<concat_forward_fn> concat_forward;
extern KernelTable<concat_backward_fn> concat_backward;

}  // namespace strata
