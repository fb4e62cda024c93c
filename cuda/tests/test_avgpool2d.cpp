// avgpool2d's CUDA twin (cuda/avgpool2d.cu): the op's errors on a device tensor. Its parity with the CPU (bitwise:
// the GPU adds the same terms in the same order and divides with IEEE rounding) is checked on every entry of
// tests/op_cases.h, which covers every divisor rule.
#include <doctest/doctest.h>

#include "cuda/tests/helpers.h"
#include "framework/check.h"
#include "layers/avgpool2d.h"

using namespace strata;

TEST_CASE("cuda avgpool2d: errors on a device tensor") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(avgpool2d(x, {.kernel_size = {2, 0}}), doctest::Contains("kernel_size must be positive"),
                         Error);
    CHECK_THROWS_WITH_AS(avgpool2d(x, {.kernel_size = 3, .padding = 2}),
                         doctest::Contains("padding should be at most half of kernel_size"), Error);
    CHECK_THROWS_WITH_AS(avgpool2d(zeros({1, 2, 5, 5}, DType::I32, kCuda0), {.kernel_size = 2}),
                         doctest::Contains("avgpool2d"), Error);
}
