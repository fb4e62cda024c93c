// avgpool2d's CUDA twin (cuda/avgpool2d.cu) against the CPU kernel: forward and backward are bitwise equal (the
// GPU adds the same terms in the same order and divides with IEEE rounding), for every divisor rule
// (count_include_pad both ways, padding, ceil_mode windows that hang past the padding); and the op's errors on a
// device tensor.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "layers/avgpool2d.h"

using namespace strata;

namespace {

struct AvgPoolCase {
    Shape shape;
    AvgPool2dOptions options;  // count_include_pad is tried both ways
};

const std::vector<AvgPoolCase>& avgpool_cases() {
    static const std::vector<AvgPoolCase> cases = {
        {{2, 3, 9, 11}, {.kernel_size = 3, .stride = 2, .padding = 1}},  // overlapping windows, padded borders
        {{1, 2, 8, 8}, {.kernel_size = 2}},
        {{1, 1, 3, 3}, {.kernel_size = 2, .stride = 2, .ceil_mode = true}},  // the NOTE's window past the padding
        {{2, 1, 7, 10}, {.kernel_size = {3, 2}, .stride = {2, 3}, .padding = {1, 1}, .ceil_mode = true}},
        {{1, 3, 5, 5}, {.kernel_size = 3, .stride = 1, .padding = 1}},
        {{2, 2, 13, 6}, {.kernel_size = {4, 2}, .stride = {3, 1}, .padding = {2, 1}, .ceil_mode = true}},
        {{1, 1, 1, 1}, {.kernel_size = 1}},
        {{3, 1, 4, 9}, {.kernel_size = {1, 5}, .stride = {1, 2}, .padding = {0, 2}}},
    };
    return cases;
}

}  // namespace

TEST_CASE("cuda avgpool2d: forward and backward are bitwise equal to the CPU's") {
    if (skip_unless_cuda()) return;
    Generator gen(41);
    for (const AvgPoolCase& c : avgpool_cases()) {
        for (bool count_include_pad : {true, false}) {
            AvgPool2dOptions o = c.options;
            o.count_include_pad = count_include_pad;
            INFO("shape ", shape_str(c.shape), ", kernel (", o.kernel_size.h, ", ", o.kernel_size.w, "), stride (",
                 o.stride.h, ", ", o.stride.w, "), padding (", o.padding.h, ", ", o.padding.w, "), ceil_mode ",
                 o.ceil_mode, ", count_include_pad ", count_include_pad);
            Tensor x = randn(c.shape, gen);
            Tensor dy = randn(avgpool2d(x, o).shape(), gen);
            auto op = [&](const Tensor& t) { return avgpool2d(t, o); };
            ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
            ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);
            CHECK(bitwise_difference(cuda.y, cpu.y) == "");
            CHECK(bitwise_difference(cuda.dx, cpu.dx) == "");
        }
    }
}

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
