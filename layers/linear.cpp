// linear: a fully connected layer applied to the last dimension of its input.
//
// With x flattened to X (rows, in) (all leading dimensions become rows), W (out, in) and b (out):
//
//   forward:   Y = X · Wᵀ + b               Y[r, j] = sum_k X[r, k] W[j, k] + b[j]
//   backward:  dX = dY · W                  dX[r, k] = sum_j dY[r, j] W[j, k]
//              dW = dYᵀ · X                 dW[j, k] = sum_r dY[r, j] X[r, k]
//              db = sum_r dY[r, :]          (b is added to every row, so its gradient sums over the rows)
//
// Each product is one GEMM through gemm_cpu (row-major; the transposes are flags, nothing is copied); which GEMM is
// written once for every device in layers/linear_plan.h. db is the column sum of dY, computed by sum
// (layers/sum.cpp, double accumulation).
//
// NOTE: W is stored (out, in) as in PyTorch, so checkpoints load unchanged; the forward therefore multiplies by
// Wᵀ. The forward writes b into every row of Y first and lets the GEMM add X·Wᵀ to it (beta = 1).
#include "layers/linear.h"

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"
#include "layers/linear_plan.h"
#include "layers/sum.h"

namespace strata {

constinit KernelTable<linear_forward_fn> linear_forward{"linear_forward"};
constinit KernelTable<linear_backward_input_fn> linear_backward_input{"linear_backward_input"};
constinit KernelTable<linear_backward_weight_fn> linear_backward_weight{"linear_backward_weight"};

namespace {

// y[r, j] = bias[j] for every row r of y (rows, out)
void broadcast_rows_cpu(float* y, const float* bias, int64_t rows, int64_t out) {
    parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / out), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r)
            for (int64_t j = 0; j < out; ++j) y[r * out + j] = bias[j];
    });
}

const LinearDevice kCpu{gemm_cpu, broadcast_rows_cpu};

// The kernels of linear.h: the shared plan (layers/linear_plan.h) on the CPU's primitives.
void linear_forward_cpu(float* y, const float* x, const float* weight, const float* bias, int64_t rows, int64_t in,
                        int64_t out) {
    linear_forward_plan(kCpu, y, x, weight, bias, rows, in, out);
}

void linear_backward_input_cpu(float* dx, const float* dy, const float* weight, int64_t rows, int64_t in,
                               int64_t out) {
    linear_backward_input_plan(kCpu, dx, dy, weight, rows, in, out);
}

void linear_backward_weight_cpu(float* dweight, const float* dy, const float* x, int64_t rows, int64_t in,
                                int64_t out) {
    linear_backward_weight_plan(kCpu, dweight, dy, x, rows, in, out);
}

}  // namespace

REGISTER_KERNEL(linear_forward, DeviceType::CPU, linear_forward_cpu);
REGISTER_KERNEL(linear_backward_input, DeviceType::CPU, linear_backward_input_cpu);
REGISTER_KERNEL(linear_backward_weight, DeviceType::CPU, linear_backward_weight_cpu);

Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
    check_dtype(x_in, DType::F32, "linear", "input");
    check_dtype(weight_in, DType::F32, "linear", "weight");
    check_dim(weight_in, 2, "linear", "weight", "(out_features, in_features)");
    int64_t out = weight_in.size(0), in = weight_in.size(1);
    STRATA_CHECK(in > 0 && out > 0, "linear: weight must have at least one row and one column, got shape ",
                 weight_in.shape_string());
    STRATA_CHECK(x_in.dim() >= 1 && x_in.size(-1) == in, "linear: input must be (..., in_features) with in_features ",
                 in, " from weight ", weight_in.shape_string(), ", got input shape ", x_in.shape_string());
    check_same_device(x_in, weight_in, "linear");
    bool has_bias = bias_in.defined();
    if (has_bias) {
        check_dtype(bias_in, DType::F32, "linear", "bias");
        STRATA_CHECK(bias_in.shape() == Shape{out}, "linear: bias must have shape [", out,
                     "] (out_features of weight ", weight_in.shape_string(), "), got ", bias_in.shape_string());
        check_same_device(x_in, bias_in, "linear");
    }

    // (..., in) -> (rows, in); the reshape is recorded by autograd, so dX comes back in x's shape.
    Tensor x = x_in.dim() == 2 ? x_in.contiguous() : x_in.reshape({-1, in});
    Tensor weight = weight_in.contiguous();
    Tensor bias = has_bias ? bias_in.contiguous() : Tensor();
    int64_t rows = x.size(0);
    Tensor y = empty({rows, out}, DType::F32, x.device());
    linear_forward[x.device()](y.f32(), x.f32(), weight.f32(), has_bias ? bias.f32() : nullptr, rows, in, out);

    if (any_requires_grad({x, weight, bias})) {
        Tensor saved_x = x.detach(), saved_w = weight.detach();
        record(y, "linear", {x, weight, bias},
               [saved_x, saved_w, rows, in, out](const Tensor& dy_in, const std::vector<bool>& needs_grad) {
                   Tensor dy = dy_in.contiguous();  // (rows, out)
                   Tensor dx, dweight, dbias;
                   if (needs_grad[0]) {
                       dx = empty({rows, in}, DType::F32, dy.device());
                       linear_backward_input[dy.device()](dx.f32(), dy.f32(), saved_w.f32(), rows, in, out);
                   }
                   if (needs_grad[1]) {
                       dweight = empty({out, in}, DType::F32, dy.device());
                       linear_backward_weight[dy.device()](dweight.f32(), dy.f32(), saved_x.f32(), rows, in, out);
                   }
                   if (needs_grad[2]) dbias = sum(dy, 0);
                   return std::vector<Tensor>{dx, dweight, dbias};
               });
    }
    if (x_in.dim() == 2) return y;
    Shape out_shape = x_in.shape();
    out_shape.back() = out;
    return y.reshape(out_shape);
}

Linear::Linear(int64_t in_features_, int64_t out_features_, bool with_bias)
    : in_features(in_features_), out_features(out_features_) {
    STRATA_CHECK(in_features > 0 && out_features > 0, "Linear: in_features and out_features must be positive, got ",
                 in_features, " and ", out_features);
    // PyTorch's reset_parameters: kaiming_uniform_(a = sqrt(5)) on the weight, whose bound
    // gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) simplifies to 1/sqrt(in); the bias uses the same bound.
    float bound = float(1.0 / std::sqrt(double(in_features)));
    weight = register_parameter("weight", rand_uniform({out_features, in_features}, -bound, bound));
    if (with_bias) bias = register_parameter("bias", rand_uniform({out_features}, -bound, bound));
}

namespace {
std::shared_ptr<Module> make_linear(Attrs& attrs) {
    int64_t in_features = attrs.require_int("in_features");
    int64_t out_features = attrs.require_int("out_features");
    bool bias = attrs.get_bool("bias", true);
    return std::make_shared<Linear>(in_features, out_features, bias);
}
}  // namespace

REGISTER_LAYER("linear", make_linear);

}  // namespace strata
