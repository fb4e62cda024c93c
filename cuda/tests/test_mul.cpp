// mul's CUDA twin (cuda/mul.cu): its error on a device tensor. The forward and the gradient against the CPU
// (bitwise: one float multiply per element) are checked on tests/op_cases.h's entries.
#include <doctest/doctest.h>

#include "cuda/tests/helpers.h"
#include "framework/check.h"
#include "layers/mul.h"

using namespace strata;

TEST_CASE("cuda mul: a non-F32 device tensor is an error") {
    if (skip_unless_cuda()) return;
    CHECK_THROWS_WITH_AS(mul(zeros({2}, DType::I32, kCuda0), 2.0f), doctest::Contains("mul: input must be F32, got I32"),
                         Error);
}
