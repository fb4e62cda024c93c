// linear's CUDA twin (cuda/linear.cu: cuBLAS through gemm_cuda) against the CPU kernels, forward and backward
// (dx, dweight, dbias), with and without bias, on 2-D and 3-D inputs of odd sizes; and the op's errors with device
// tensors.
//
// Tolerance (cuda/tests/gemm_parity.h): y[r, j] sums `in` products plus the bias, dx[r, k] sums `out` products,
// dweight[j, k] sums `rows` products; each element may differ by (terms + 2) * FLT_EPSILON * (the same sum over
// absolute values), computed with the CPU op on |x|, |w|, |dy|. dbias (sum's kernel, double accumulation on both
// sides) is held to the same bound with `rows` terms.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/gemm_parity.h"
#include "cuda/tests/helpers.h"
#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/linear.h"
#include "layers/sum.h"

using namespace strata;

namespace {

struct LinearRun {
    std::vector<float> y, dx, dweight, dbias;
};

// linear(x, w, b) on `device`, then backward with dy; the leaves live on the CPU, so the gradients come back there.
LinearRun run_linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy, Device device) {
    Tensor xl = x.clone().requires_grad_(), wl = w.clone().requires_grad_();
    Tensor bl = b.defined() ? b.clone().requires_grad_() : Tensor();
    Tensor y = linear(xl.to(device), wl.to(device), bl.defined() ? bl.to(device) : Tensor());
    STRATA_CHECK(y.device() == device, "linear ran on ", device_name(y.device()));
    y.backward(dy.to(device));
    LinearRun run{y.to_vector(), xl.grad().to_vector(), wl.grad().to_vector(), {}};
    if (bl.defined()) run.dbias = bl.grad().to_vector();
    return run;
}

void check_linear(const Shape& x_shape, int64_t out, bool with_bias, Generator& gen) {
    INFO("x ", shape_str(x_shape), ", out_features ", out, ", bias ", with_bias);
    int64_t in = x_shape.back(), rows = 1;
    for (size_t d = 0; d + 1 < x_shape.size(); ++d) rows *= x_shape[d];
    Tensor x = randn(x_shape, gen), w = randn({out, in}, gen);
    Tensor b = with_bias ? randn({out}, gen) : Tensor();
    Shape y_shape = x_shape;
    y_shape.back() = out;
    Tensor dy = randn(y_shape, gen);

    LinearRun cpu = run_linear(x, w, b, dy, kCPU);
    LinearRun cuda = run_linear(x, w, b, dy, kCuda0);

    NoGradGuard no_grad;
    Tensor dy2 = abs_of(dy).reshape({rows, out});
    Tensor y_bound = linear(abs_of(x), abs_of(w), with_bias ? abs_of(b) : Tensor());
    Tensor dx_bound = linear(dy2, abs_of(w).transpose(0, 1));                                // |dy| |w|
    Tensor dw_bound = linear(dy2.transpose(0, 1), abs_of(x).reshape({rows, in}).transpose(0, 1));  // |dy|ᵀ |x|
    CHECK(difference_beyond(cuda.y, cpu.y, sum_tolerance(y_bound, in + 2)) == "");
    CHECK(difference_beyond(cuda.dx, cpu.dx, sum_tolerance(dx_bound, out + 2)) == "");
    CHECK(difference_beyond(cuda.dweight, cpu.dweight, sum_tolerance(dw_bound, rows + 2)) == "");
    if (with_bias) CHECK(difference_beyond(cuda.dbias, cpu.dbias, sum_tolerance(sum(dy2, 0), rows + 2)) == "");
}

}  // namespace

TEST_CASE("cuda linear: forward and backward match the CPU's") {
    if (skip_unless_cuda()) return;
    Generator gen(201);
    for (bool with_bias : {true, false}) {
        check_linear({1, 1}, 1, with_bias, gen);
        check_linear({7, 5}, 3, with_bias, gen);
        check_linear({2, 3, 17}, 9, with_bias, gen);  // leading dimensions flattened into rows
        check_linear({65, 100}, 33, with_bias, gen);
        check_linear({3, 1}, 40, with_bias, gen);     // in_features 1: every product is a single term
    }
}

TEST_CASE("cuda linear: the Linear module runs on the device") {
    if (skip_unless_cuda()) return;
    Generator gen(202);
    manual_seed(5);
    Linear cpu_layer(6, 4);
    manual_seed(5);  // the same initial weights
    Linear cuda_layer(6, 4);
    cuda_layer.to(kCuda0);
    CHECK(cuda_layer.weight.device() == kCuda0);
    Tensor x = randn({5, 6}, gen);
    Tensor want = cpu_layer.forward(x);
    Tensor got = cuda_layer.forward(x.to(kCuda0));
    CHECK(got.device() == kCuda0);
    NoGradGuard no_grad;
    Tensor bound = linear(abs_of(x), abs_of(cpu_layer.weight), abs_of(cpu_layer.bias));
    CHECK(difference_beyond(got.to_vector(), want.to_vector(), sum_tolerance(bound, 6 + 2)) == "");
}

TEST_CASE("cuda linear: mixing devices is a clear error") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({2, 3}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(linear(x, zeros({4, 3})), doctest::Contains("linear: tensors are on different devices"),
                         Error);
    CHECK_THROWS_WITH_AS(linear(x, zeros({4, 3}, DType::F32, kCuda0), zeros({4})),
                         doctest::Contains("linear: tensors are on different devices"), Error);
    CHECK_THROWS_WITH_AS(linear(x, zeros({4, 5}, DType::F32, kCuda0)), doctest::Contains("in_features 5"), Error);
}
