// maxpool2d's CUDA twin (cuda/maxpool2d.cu) against the CPU kernel: values, argmax indices and the gradient must
// be bitwise equal (max pooling only selects and adds in the CPU's order), at several shapes and options, with
// ties, NaN and infinities; and the op's errors on a device tensor.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "layers/maxpool2d.h"

using namespace strata;

namespace {

struct MaxPoolCase {
    Shape shape;
    MaxPool2dOptions options;
};

const std::vector<MaxPoolCase>& maxpool_cases() {
    static const std::vector<MaxPoolCase> cases = {
        {{2, 3, 9, 11}, {.kernel_size = 3, .stride = 2, .padding = 1}},  // PSPNet's stem pool: overlapping windows
        {{1, 2, 8, 8}, {.kernel_size = 2}},                               // stride = kernel
        {{2, 1, 7, 10}, {.kernel_size = {3, 2}, .stride = {2, 3}, .padding = {1, 0}, .ceil_mode = true}},
        {{1, 3, 5, 5}, {.kernel_size = 3, .stride = 1, .padding = 1}},  // every element in up to 9 windows
        {{2, 2, 13, 6}, {.kernel_size = {4, 2}, .stride = {3, 1}, .padding = {2, 1}, .ceil_mode = true}},
        {{1, 1, 1, 1}, {.kernel_size = 1}},
        {{3, 1, 4, 9}, {.kernel_size = {1, 5}, .stride = {1, 2}, .padding = {0, 2}}},
    };
    return cases;
}

// x rounded to integers: many windows then hold several equal maxima, which the tie rule must settle as the CPU does.
Tensor with_ties(const Tensor& x) {
    std::vector<float> v = x.to_vector();
    for (float& e : v) e = std::round(2.0f * e);
    return from_vector(v, x.shape());
}

// Values and argmax indices from calling the kernel table directly (the op keeps the indices to itself).
struct PoolResult {
    std::vector<float> y;
    std::vector<int64_t> indices;
};

PoolResult forward_kernel(const Tensor& x_cpu, const MaxPool2dOptions& o, Device device) {
    Pool2dParams p = pool2d_params("maxpool2d", x_cpu, o.kernel_size, o.stride, o.padding, o.ceil_mode);
    Tensor x = x_cpu.to(device);
    Shape out{x.size(0), x.size(1), p.out_h, p.out_w};
    Tensor y = empty(out, DType::F32, device);
    Tensor indices = empty(out, DType::I32, device);
    maxpool2d_forward[device](y.f32(), indices.i32(), x.f32(), p);
    return {y.to_vector(), indices.to_vector_i64()};
}

}  // namespace

TEST_CASE("cuda maxpool2d: forward, argmax and backward are bitwise equal to the CPU's") {
    if (skip_unless_cuda()) return;
    Generator gen(31);
    for (const MaxPoolCase& c : maxpool_cases()) {
        for (bool ties : {false, true}) {
            INFO("shape ", shape_str(c.shape), ", kernel (", c.options.kernel_size.h, ", ", c.options.kernel_size.w,
                 "), stride (", c.options.stride.h, ", ", c.options.stride.w, "), padding (", c.options.padding.h,
                 ", ", c.options.padding.w, "), ceil_mode ", c.options.ceil_mode, ", ties ", ties);
            Tensor x = randn(c.shape, gen);
            if (ties) x = with_ties(x);
            PoolResult want = forward_kernel(x, c.options, kCPU);
            PoolResult got = forward_kernel(x, c.options, kCuda0);
            CHECK(bitwise_difference(got.y, want.y) == "");
            CHECK(got.indices == want.indices);

            auto op = [&](const Tensor& t) { return maxpool2d(t, c.options); };
            Tensor dy = randn(maxpool2d(x, c.options).shape(), gen);
            ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
            ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);
            CHECK(bitwise_difference(cuda.y, cpu.y) == "");
            CHECK(bitwise_difference(cuda.dx, cpu.dx) == "");
        }
    }
}

TEST_CASE("cuda maxpool2d: NaN and infinities follow the CPU's rules") {
    if (skip_unless_cuda()) return;
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // Row 0: a NaN then a larger value (NaN still wins), two NaNs in one window (the last gives the index).
    // Rows 2-3: all -inf (the window reports its first element), +inf against NaN.
    std::vector<float> v = {1,    nan,  5,    3,    nan,  2,    //
                            4,    0,    nan,  7,    1,    -inf, //
                            -inf, -inf, inf,  3,    -inf, -inf, //
                            -inf, -inf, nan,  inf,  -inf, -inf};
    Tensor x = from_vector(v, {1, 1, 4, 6});
    for (MaxPool2dOptions o : {MaxPool2dOptions{.kernel_size = 2},
                               MaxPool2dOptions{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true},
                               MaxPool2dOptions{.kernel_size = {2, 3}, .stride = 1}}) {
        INFO("kernel (", o.kernel_size.h, ", ", o.kernel_size.w, ")");
        PoolResult want = forward_kernel(x, o, kCPU);
        PoolResult got = forward_kernel(x, o, kCuda0);
        CHECK(bitwise_difference(got.y, want.y) == "");
        CHECK(got.indices == want.indices);

        Tensor dy = full(maxpool2d(x, o).shape(), 1.5f);
        auto op = [&](const Tensor& t) { return maxpool2d(t, o); };
        ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
        ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);
        CHECK(bitwise_difference(cuda.y, cpu.y) == "");
        CHECK(bitwise_difference(cuda.dx, cpu.dx) == "");
    }
}

TEST_CASE("cuda maxpool2d: errors on a device tensor") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {.kernel_size = 0}), doctest::Contains("kernel_size must be positive"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {.kernel_size = 2, .padding = 2}),
                         doctest::Contains("padding should be at most half of kernel_size"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {.kernel_size = 7}), doctest::Contains("is too small for kernel_size"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(zeros({2, 5, 5}, DType::F32, kCuda0), {.kernel_size = 2}),
                         doctest::Contains("must be 4-D"), Error);
}
