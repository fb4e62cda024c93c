// upsample_bilinear2d's CUDA twin (cuda/upsample_bilinear2d.cu) against the CPU kernel, forward and backward, with
// align_corners both ways, up- and downsampling, sizes given as a size or as a scale factor (PyTorch's 1/scale
// coordinate rule, and an axis that keeps its size); and the op's errors on a device tensor.
//
// Tolerance. Both kernels do the same operations in the same order (the backward's gather adds in the CPU's
// order), but either compiler may fuse a * b + c into one rounding, so they differ by a few roundings:
//   - a weight: the source coordinate src < in may differ by one rounding, eps * in, and so may the weights;
//   - y is a blend of 4 values with weights summing to 1: 3 products and 3 sums, each within eps/2 of max|x| on
//     either side, plus the weights' difference times |x[i1] - x[i0]| <= 2 max|x|: (3 + 2 * 2 in) eps max|x|;
//   - dx sums the weighted dy of the K outputs that read it (K <= (2 ceil(out / in) + 2) per axis), each term and
//     each running sum off by as much: K (4 + 4 in) eps max|dy|.
// These bounds are loose (the observed differences are an ulp or two); a wrong tap or a missed output is far
// larger.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "layers/upsample_bilinear2d.h"

using namespace strata;

namespace {

double max_abs(const std::vector<float>& v) {
    double m = 0;
    for (float e : v) m = std::max(m, double(std::fabs(e)));
    return m;
}

// Runs op on the CPU and on the device and compares within the tolerances of the file comment.
void check_parity(const std::function<Tensor(const Tensor&)>& op, const Shape& shape, Generator& gen) {
    Tensor x = randn(shape, gen);
    Tensor dy = randn(op(x).shape(), gen);
    ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
    ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);

    int64_t in_h = x.size(2), in_w = x.size(3), out_h = dy.size(2), out_w = dy.size(3);
    double in = double(std::max(in_h, in_w));
    double k = double((2 * ((out_h + in_h - 1) / in_h) + 2) * (2 * ((out_w + in_w - 1) / in_w) + 2));
    CHECK(difference_above(cuda.y, cpu.y, (3 + 4 * in) * FLT_EPSILON * max_abs(x.to_vector())) == "");
    CHECK(difference_above(cuda.dx, cpu.dx, k * (4 + 4 * in) * FLT_EPSILON * max_abs(dy.to_vector())) == "");
}

}  // namespace

TEST_CASE("cuda upsample_bilinear2d: forward and backward by size match the CPU's") {
    if (skip_unless_cuda()) return;
    Generator gen(61);
    struct Case {
        Shape shape;
        Size2 out;
    };
    for (Case c : {Case{{2, 3, 5, 7}, {11, 9}},        // upsampling, odd sizes
                   Case{{1, 2, 6, 6}, {41, 41}},       // PSPNet's pyramid: 6 -> 8k + 1, every 1/8 pixel
                   Case{{1, 2, 9, 8}, {4, 3}},         // downsampling: some inputs are read by no output
                   Case{{1, 1, 1, 1}, {5, 4}},         // the pyramid's 1x1 branch
                   Case{{1, 2, 3, 4}, {1, 1}},         // one output: align_corners maps it to the corner
                   Case{{2, 1, 4, 5}, {4, 13}},        // one axis unchanged
                   Case{{1, 1, 2, 2}, {2, 3100}}}) {   // too wide for the backward's shared-memory tap table
        for (bool align_corners : {true, false}) {
            INFO("shape ", shape_str(c.shape), " -> (", c.out.h, ", ", c.out.w, "), align_corners ", align_corners);
            check_parity([&](const Tensor& t) { return upsample_bilinear2d(t, c.out, align_corners); }, c.shape, gen);
        }
    }
}

TEST_CASE("cuda upsample_bilinear2d: forward and backward by scale factor match the CPU's") {
    if (skip_unless_cuda()) return;
    Generator gen(62);
    struct Case {
        Shape shape;
        double scale_h, scale_w;
    };
    for (Case c : {Case{{1, 2, 5, 7}, 1.5, 2.0},       // 5 * 1.5 = 7.5 -> 7 rows, coordinates at 1/1.5
                   Case{{2, 1, 6, 5}, 1.0, 2.5},       // an axis that keeps its size is copied
                   Case{{1, 2, 9, 10}, 0.5, 0.7},      // downsampling by a factor
                   Case{{1, 1, 3, 3}, 8.0, 8.0}}) {
        for (bool align_corners : {true, false}) {
            INFO("shape ", shape_str(c.shape), ", scale (", c.scale_h, ", ", c.scale_w, "), align_corners ",
                 align_corners);
            check_parity(
                [&](const Tensor& t) { return upsample_bilinear2d_scale(t, c.scale_h, c.scale_w, align_corners); },
                c.shape, gen);
        }
    }
}

TEST_CASE("cuda upsample_bilinear2d: errors on a device tensor") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(x, {0, 3}, false), doctest::Contains("output_size must be positive"),
                         Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d_scale(x, 0.1, 1.0, true), doctest::Contains("makes the output"), Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(zeros({5, 5}, DType::F32, kCuda0), {2, 2}, true),
                         doctest::Contains("must be 4-D"), Error);
}
