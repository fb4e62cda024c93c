// sum: the sum of all elements, or along one dimension.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/tensor.h"

namespace strata {

// All elements -> a 0-D tensor (shape {}).
Tensor sum(const Tensor& x);
// Along dimension `dim` (negative counts from the end). keepdim keeps it with size 1, as in PyTorch.
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);

// The input seen as (outer, len, inner) for a reduction: `len` elements are reduced, `outer` is the product of the
// sizes before the reduced dimension and `inner` the product of those after it. out_shape is the result's shape.
// sum and mean (layers/mean.cpp) share these helpers and the kernels below.
struct ReductionView {
    int64_t outer = 1, len = 1, inner = 1;
    Shape out_shape;
};
ReductionView reduction_view_all(const Tensor& x);  // every element: (1, numel, 1) -> shape {}
ReductionView reduction_view_dim(const Tensor& x, int64_t dim, bool keepdim, const char* op);
// y = scale * (sum over the view's len), with autograd recorded under the name `op`.
Tensor scaled_sum(const Tensor& x, const ReductionView& view, float scale, const char* op);

// Kernels, on x as (outer, len, inner) and y as (outer, inner). scale is 1 for sum and 1/len for mean.
//   forward:   y[o, i]     = scale * sum_l x[o, l, i]
//   backward:  dx[o, l, i] = scale * dy[o, i]
using sum_forward_fn = void (*)(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, float scale);
using sum_backward_fn = void (*)(float* dx, const float* dy, int64_t outer, int64_t len, int64_t inner, float scale);
extern KernelTable<sum_forward_fn> sum_forward;
extern KernelTable<sum_backward_fn> sum_backward;

}  // namespace strata
