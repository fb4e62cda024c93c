// linear's CUDA twin (cuda/linear.cu: cuBLAS through gemm_cuda): the module on the device, and the op's errors with
// device tensors. Its parity with the CPU (within the GEMM bound linear_bound) is checked on every entry of
// tests/op_cases.h.
#include <doctest/doctest.h>

#include "cuda/tests/gemm_parity.h"
#include "cuda/tests/helpers.h"
#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/linear.h"

using namespace strata;

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
