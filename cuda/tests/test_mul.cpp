// mul's CUDA twin (cuda/mul.cu) against the CPU kernel: the forward and the gradient (the same kernel on dy) must be
// bitwise equal (one float multiply per element, rounded the same way), at several sizes and scalars.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/mul.h"

using namespace strata;

TEST_CASE("cuda mul: forward and gradient match the CPU bitwise") {
    if (skip_unless_cuda()) return;
    Generator gen(23);
    for (Shape shape : {Shape{1}, Shape{3, 7}, Shape{2, 3, 33, 17}, Shape{70001}}) {
        for (float s : {0.4f, -3.0f, 0.0f}) {
            INFO("shape ", shape_str(shape), ", s ", s);
            Tensor x = randn(shape, gen), dy = randn(shape, gen);
            auto op = [s](const Tensor& t) { return t * s; };
            ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
            ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);
            CHECK(bitwise_difference(cuda.y, cpu.y) == "");
            CHECK(bitwise_difference(cuda.dx, cpu.dx) == "");
        }
    }
}

TEST_CASE("cuda mul: a non-F32 device tensor is an error") {
    if (skip_unless_cuda()) return;
    CHECK_THROWS_WITH_AS(mul(zeros({2}, DType::I32, kCuda0), 2.0f), doctest::Contains("mul: input must be F32, got I32"),
                         Error);
}
