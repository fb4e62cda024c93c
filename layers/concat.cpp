// concat: joins k tensors along dimension d.
//
//   forward:   y = [x_0, x_1, ..., x_{k-1}] along d;  y.size(d) = sum_i x_i.size(d)
//   backward:  dx_i = the slice of dy that x_i was copied to
//
// Layout: with outer = the product of the sizes before d and inner = the product of the sizes after d, a row-major
// tensor is a matrix of `outer` rows; x_i's rows have size_i(d) * inner elements and sit side by side in y's rows:
//
//     y row r = [ x_0 row r | x_1 row r | ... ],   x_i starting at column col_offset_i = (sum_{j<i} size_j(d)) * inner
//
// so both directions are strided block copies, and the backward is the forward's transpose (slice out instead of
// copy in). Only F32 tensors are supported: concat is a layer in a differentiable network, not a general tensor
// utility.
#include "layers/concat.h"

#include <algorithm>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<concat_forward_fn> concat_forward{"concat_forward"};
constinit KernelTable<concat_backward_fn> concat_backward{"concat_backward"};

namespace {

// y (outer, y_cols), columns [col_offset, col_offset + x_cols)  <-  x (outer, x_cols)
void concat_forward_cpu(float* y, const float* x, int64_t outer, int64_t x_cols, int64_t y_cols,
                        int64_t col_offset) {
    int64_t grain = std::max<int64_t>(1, 32768 / x_cols);
    parallel_for(0, outer, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) std::copy_n(x + r * x_cols, x_cols, y + r * y_cols + col_offset);
    });
}

// dx (outer, x_cols)  <-  dy (outer, y_cols), columns [col_offset, col_offset + x_cols)
void concat_backward_cpu(float* dx, const float* dy, int64_t outer, int64_t x_cols, int64_t y_cols,
                         int64_t col_offset) {
    int64_t grain = std::max<int64_t>(1, 32768 / x_cols);
    parallel_for(0, outer, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) std::copy_n(dy + r * y_cols + col_offset, x_cols, dx + r * x_cols);
    });
}

}  // namespace

REGISTER_KERNEL(concat_forward, DeviceType::CPU, concat_forward_cpu);
REGISTER_KERNEL(concat_backward, DeviceType::CPU, concat_backward_cpu);

Tensor concat(const std::vector<Tensor>& xs_in, int64_t dim) {
    STRATA_CHECK(!xs_in.empty(), "concat: needs at least one tensor, got an empty list");
    for (size_t i = 0; i < xs_in.size(); ++i) {
        std::string arg = str("tensor ", i);
        check_dtype(xs_in[i], DType::F32, "concat", arg.c_str());
    }
    const Tensor& first = xs_in[0];
    int64_t ndim = first.dim();
    STRATA_CHECK(ndim > 0, "concat: cannot concatenate 0-D tensors (tensor 0 has shape ", first.shape_string(), ")");
    STRATA_CHECK(dim >= -ndim && dim < ndim, "concat: dim ", dim, " is out of range for ", ndim,
                 "-D tensors (tensor 0 has shape ", first.shape_string(), "); expected a dim in [", -ndim, ", ",
                 ndim - 1, "]");
    int64_t d = dim < 0 ? dim + ndim : dim;

    Shape out_shape = first.shape();
    out_shape[size_t(d)] = 0;
    for (size_t i = 0; i < xs_in.size(); ++i) {
        const Tensor& x = xs_in[i];
        STRATA_CHECK(x.device() == first.device(), "concat: tensor ", i, " is on ", device_name(x.device()),
                     " but tensor 0 is on ", device_name(first.device()), "; move it with .to(device)");
        bool same = x.dim() == ndim;
        for (int64_t k = 0; same && k < ndim; ++k) same = k == d || x.size(k) == first.size(k);
        STRATA_CHECK(same, "concat: tensor ", i, " has shape ", x.shape_string(), " but tensor 0 has shape ",
                     first.shape_string(), "; all sizes except dim ", d, " must match");
        out_shape[size_t(d)] += x.size(d);
    }

    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < d; ++k) outer *= first.size(k);
    for (int64_t k = d + 1; k < ndim; ++k) inner *= first.size(k);
    int64_t y_cols = out_shape[size_t(d)] * inner;

    std::vector<Tensor> xs;
    std::vector<int64_t> offsets;  // column offset of each input in y's rows
    Tensor y = empty(out_shape, DType::F32, first.device());
    int64_t col = 0;
    for (const Tensor& x_in : xs_in) {
        Tensor x = x_in.contiguous();
        int64_t x_cols = x.size(d) * inner;
        if (outer * x_cols > 0) concat_forward[y.device()](y.f32(), x.f32(), outer, x_cols, y_cols, col);
        xs.push_back(x);
        offsets.push_back(col);
        col += x_cols;
    }

    if (any_requires_grad(xs)) {
        std::vector<Shape> shapes;
        for (const Tensor& x : xs) shapes.push_back(x.shape());
        record(y, "concat", xs,
               [shapes, offsets, d, outer, inner, y_cols](const Tensor& dy_in, const std::vector<bool>& needs_grad) {
                   Tensor dy = dy_in.contiguous();
                   std::vector<Tensor> dxs(shapes.size());
                   for (size_t i = 0; i < shapes.size(); ++i) {
                       if (!needs_grad[i]) continue;
                       dxs[i] = empty(shapes[i], DType::F32, dy.device());
                       int64_t x_cols = shapes[i][size_t(d)] * inner;
                       if (outer * x_cols > 0)
                           concat_backward[dy.device()](dxs[i].f32(), dy.f32(), outer, x_cols, y_cols, offsets[i]);
                   }
                   return dxs;
               });
    }
    return y;
}

}  // namespace strata
