// upsample_bilinear2d's CUDA twin (cuda/upsample_bilinear2d.cu): the op's errors on a device tensor. Its parity
// with the CPU (within a few roundings: upsample_bilinear2d_bound) is checked on every entry of tests/op_cases.h.
#include <doctest/doctest.h>

#include "cuda/tests/helpers.h"
#include "framework/check.h"
#include "layers/upsample_bilinear2d.h"

using namespace strata;

TEST_CASE("cuda upsample_bilinear2d: errors on a device tensor") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(x, {0, 3}, false), doctest::Contains("output_size must be positive"),
                         Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d_scale(x, 0.1, 1.0, true), doctest::Contains("makes the output"), Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(zeros({5, 5}, DType::F32, kCuda0), {2, 2}, true),
                         doctest::Contains("must be 4-D"), Error);
}
