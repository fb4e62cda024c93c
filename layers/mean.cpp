// mean: the average of all elements, or along one dimension.
//
//   forward:   y = (1/len) * sum_l x[..., l, ...]         len = the number of elements averaged
//   backward:  dx[..., l, ...] = dy / len                   (dy broadcast back along the reduced dimension)
//
// This file has no kernels of its own: the mean is a sum with scale 1/len, computed by sum's kernels
// (sum_forward / sum_backward in layers/sum.cpp, which accumulate in double with a thread-count-independent
// order). The scale is applied once to the double total, not to each term.
//
// NOTE: PyTorch returns NaN for the mean of no elements (0/0). Strata raises an error instead: an empty mean is
// a bug upstream (an empty batch, say), better caught where it happens than as a NaN loss many steps later.
#include "layers/mean.h"

#include "framework/check.h"
#include "layers/sum.h"

namespace strata {

Tensor mean(const Tensor& x) {
    check_dtype(x, DType::F32, "mean", "input");
    STRATA_CHECK(x.numel() > 0, "mean: input is empty (shape ", x.shape_string(),
                 "); the mean of no elements is undefined");
    ReductionView v = reduction_view_all(x);
    return scaled_sum(x, v, float(1.0 / double(v.len)), "mean");
}

Tensor mean(const Tensor& x, int64_t dim, bool keepdim) {
    check_dtype(x, DType::F32, "mean", "input");
    ReductionView v = reduction_view_dim(x, dim, keepdim, "mean");
    STRATA_CHECK(v.len > 0, "mean: dimension ", dim, " of input shape ", x.shape_string(),
                 " has size 0; the mean over no elements is undefined");
    return scaled_sum(x, v, float(1.0 / double(v.len)), "mean");
}

}  // namespace strata
