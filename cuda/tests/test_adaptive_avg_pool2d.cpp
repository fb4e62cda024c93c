// adaptive_avg_pool2d's CUDA twin (cuda/adaptive_avg_pool2d.cu) against the CPU kernel, at bins that divide the
// input, bins that overlap, outputs larger than the input and one bin over the whole plane; and the op's errors on
// a device tensor.
//
// The backward is a gather in the CPU's order: bitwise equal. The forward adds each bin with a warp (32 strided
// partial sums, then a shuffle tree) where the CPU adds row by row, so only the rounding differs. For a bin of n
// elements, each float sum is within (n - 1) * eps * sum|x| of the exact sum (the standard bound, whatever the
// order), so the two means differ by at most 2 (n - 1) * eps * max|x| plus one rounding of the division each:
// the tolerance below.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "layers/adaptive_avg_pool2d.h"

using namespace strata;

TEST_CASE("cuda adaptive_avg_pool2d: forward within float rounding, backward bitwise equal to the CPU's") {
    if (skip_unless_cuda()) return;
    Generator gen(51);
    struct Case {
        Shape shape;
        Size2 output_size;
    };
    for (Case c : {Case{{2, 3, 12, 12}, {6, 6}},   // bins divide the input
                   Case{{2, 3, 13, 11}, {6, 4}},   // overlapping bins of different sizes
                   Case{{1, 2, 2, 3}, {3, 5}},     // output larger than input: repeated one-element bins
                   Case{{1, 2, 31, 29}, {1, 1}},   // one bin of 899 elements
                   Case{{1, 1, 5, 70}, {2, 1}},    // bins wider than a warp: lanes loop along the rows
                   Case{{2, 2, 20, 20}, {3, 2}},   // PSPNet-like bins, 7x10 with overlap
                   Case{{1, 1, 1, 1}, {2, 3}}}) {
        INFO("shape ", shape_str(c.shape), " -> (", c.output_size.h, ", ", c.output_size.w, ")");
        Tensor x = randn(c.shape, gen);
        Tensor dy = randn({c.shape[0], c.shape[1], c.output_size.h, c.output_size.w}, gen);
        auto op = [&](const Tensor& t) { return adaptive_avg_pool2d(t, c.output_size); };
        ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
        ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);

        // the largest bin holds at most ceil(I / O) + 1 elements per axis
        int64_t bin_h = std::min(c.shape[2], (c.shape[2] + c.output_size.h - 1) / c.output_size.h + 1);
        int64_t bin_w = std::min(c.shape[3], (c.shape[3] + c.output_size.w - 1) / c.output_size.w + 1);
        std::vector<float> xs = x.to_vector();
        double max_abs = 0;
        for (float v : xs) max_abs = std::max(max_abs, double(std::fabs(v)));
        double tol = 2.0 * double(bin_h * bin_w - 1) * FLT_EPSILON * max_abs + 2.0 * FLT_EPSILON * max_abs;
        CHECK(difference_above(cuda.y, cpu.y, tol) == "");
        CHECK(bitwise_difference(cuda.dx, cpu.dx) == "");
    }
}

TEST_CASE("cuda adaptive_avg_pool2d: errors on a device tensor") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(x, {0, 3}), doctest::Contains("output_size must be positive"), Error);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(zeros({2, 5, 5}, DType::F32, kCuda0), {2, 2}),
                         doctest::Contains("must be 4-D"), Error);
}
