// adaptive_avg_pool2d's CUDA twin (cuda/adaptive_avg_pool2d.cu): the op's errors on a device tensor. Its parity
// with the CPU (backward bitwise, forward within float rounding: adaptive_avg_pool2d_bound) is checked on every
// entry of tests/op_cases.h.
#include <doctest/doctest.h>

#include "cuda/tests/helpers.h"
#include "framework/check.h"
#include "layers/adaptive_avg_pool2d.h"

using namespace strata;

TEST_CASE("cuda adaptive_avg_pool2d: errors on a device tensor") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(x, {0, 3}), doctest::Contains("output_size must be positive"), Error);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(zeros({2, 5, 5}, DType::F32, kCuda0), {2, 2}),
                         doctest::Contains("must be 4-D"), Error);
}
