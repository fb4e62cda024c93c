// avgpool2d: hand-computed divisors (padding, ceil_mode, count_include_pad), the PyTorch fixture, errors, the
// module and its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/random.h"
#include "framework/registry.h"
#include "layers/avgpool2d.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

namespace {

// This file's own random stream: its tests leave the default generator, which other test files draw from,
// alone.
Generator& test_gen() {
    static Generator gen(102);
    return gen;
}


Tensor one_to_nine() { return from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}); }

AvgPool2dOptions options_from(const nlohmann::json& p) {
    AvgPool2dOptions o;
    o.kernel_size = Size2(p["kernel_size"][0].get<int64_t>(), p["kernel_size"][1].get<int64_t>());
    if (!p["stride"].is_null()) o.stride = Size2(p["stride"][0].get<int64_t>(), p["stride"][1].get<int64_t>());
    o.padding = Size2(p["padding"][0].get<int64_t>(), p["padding"][1].get<int64_t>());
    o.ceil_mode = p["ceil_mode"].get<bool>();
    o.count_include_pad = p["count_include_pad"].get<bool>();
    return o;
}

}  // namespace

TEST_CASE("avgpool2d: hand-computed 2x2 stride 2 padding 1, count_include_pad both ways") {
    // x = [1 2 3; 4 5 6; 7 8 9]; windows are rows/columns [-1, 0] and [1, 2]
    Tensor x = one_to_nine().requires_grad_();
    Tensor y = avgpool2d(x, {.kernel_size = 2, .stride = 2, .padding = 1});
    // counting the padding, every window divides by 4: 1/4, (2+3)/4, (4+7)/4, (5+6+8+9)/4
    CHECK(y.to_vector() == std::vector<float>{0.25f, 1.25f, 2.75f, 7.0f});
    y.backward(from_vector({1, 2, 3, 4}, {1, 1, 2, 2}));
    CHECK(x.grad().to_vector() == std::vector<float>{0.25f, 0.5f, 0.5f, 0.75f, 1, 1, 0.75f, 1, 1});

    Tensor x2 = one_to_nine().requires_grad_();
    Tensor y2 = avgpool2d(x2, {.kernel_size = 2, .stride = 2, .padding = 1, .count_include_pad = false});
    // not counting it: 1/1, 5/2, 11/2, 28/4
    CHECK(y2.to_vector() == std::vector<float>{1.0f, 2.5f, 5.5f, 7.0f});
    y2.backward(from_vector({1, 2, 3, 4}, {1, 1, 2, 2}));
    CHECK(x2.grad().to_vector() == std::vector<float>{1, 1, 1, 1.5f, 1, 1, 1.5f, 1, 1});
}

TEST_CASE("avgpool2d: hand-computed ceil_mode, the overhang is never counted") {
    // 3x3, kernel 2, stride 2, no padding: ceil_mode adds windows [2, 4) that hang past the input. Their divisor
    // counts only the row/column inside, with count_include_pad true as well as false (PyTorch's rule).
    for (bool include : {true, false}) {
        Tensor x = one_to_nine().requires_grad_();
        Tensor y = avgpool2d(x, {.kernel_size = 2, .ceil_mode = true, .count_include_pad = include});
        CHECK(y.to_vector() == std::vector<float>{3.0f, 4.5f, 7.5f, 9.0f});  // 12/4, 9/2, 15/2, 9/1
        y.backward(from_vector({4, 2, 6, 8}, {1, 1, 2, 2}));
        CHECK(x.grad().to_vector() == std::vector<float>{1, 1, 1, 1, 1, 1, 3, 3, 8});
    }
}

TEST_CASE("avgpool2d: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("avgpool2d");
    for (const std::string& c : fixture_cases(fx)) {
        AvgPool2dOptions o = options_from(fixture_params(fx, c));
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = avgpool2d(x, o);
        check_close(y, fx.get(c + ".y"), 1e-6, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-6, 1e-5, c + " backward");
    }
}

TEST_CASE("avgpool2d: errors") {
    Tensor x = zeros({1, 2, 5, 5});
    CHECK_THROWS_WITH_AS(avgpool2d(zeros({2, 5, 5}), {.kernel_size = 2}),
                         doctest::Contains("avgpool2d: input must be 4-D (N,C,H,W), got shape [2, 5, 5]"), Error);
    CHECK_THROWS_WITH_AS(avgpool2d(zeros({1, 2, 5, 5}, DType::I32), {.kernel_size = 2}),
                         doctest::Contains("avgpool2d: input must be F32, got I32"), Error);
    CHECK_THROWS_WITH_AS(avgpool2d(x, {.kernel_size = {2, 0}}),
                         doctest::Contains("avgpool2d: kernel_size must be positive, got (2, 0)"), Error);
    CHECK_THROWS_WITH_AS(avgpool2d(x, {.kernel_size = 2, .stride = -1}),
                         doctest::Contains("avgpool2d: stride must be positive"), Error);
    CHECK_THROWS_WITH_AS(avgpool2d(x, {.kernel_size = {3, 2}, .padding = {1, 2}}),
                         doctest::Contains("avgpool2d: padding should be at most half of kernel_size, got padding "
                                           "(1, 2) and kernel_size (3, 2)"),
                         Error);
    CHECK_THROWS_WITH_AS(avgpool2d(zeros({1, 1, 5, 1}), {.kernel_size = 2}),
                         doctest::Contains("avgpool2d: input of size 5x1 is too small for kernel_size (2, 2)"), Error);
}

TEST_CASE("avgpool2d: module from the registry") {
    Tensor x = randn({2, 3, 9, 9}, test_gen());
    auto m = create_layer("avgpool2d", {{"kernel_size", 3}, {"stride", 2}, {"padding", 1},
                                        {"ceil_mode", true}, {"count_include_pad", false}});
    CHECK(m->type_name() == "AvgPool2d");
    CHECK(m->named_parameters().empty());
    AvgPool2dOptions o{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false};
    check_close(m->forward(x), avgpool2d(x, o), 0, 0, "registry");
    AvgPool2d direct(3, 2, 1, true, false);
    check_close(direct(x), avgpool2d(x, o), 0, 0, "constructor");

    // stride defaults to the kernel size; sizes may be [h, w]
    auto d = create_layer("avgpool2d", {{"kernel_size", {2, 3}}});
    CHECK(d->forward(x).shape() == Shape{2, 3, 4, 3});

    CHECK_THROWS_WITH_AS(create_layer("avgpool2d", {{"kernel_size", 2}, {"divisor_override", 3}}),
                         doctest::Contains("unknown attribute 'divisor_override'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("avgpool2d", {}),
                         doctest::Contains("avgpool2d: missing required attribute 'kernel_size'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("avgpool2d", {{"kernel_size", 2}, {"stride", 0}}),
                         doctest::Contains("avgpool2d: attribute 'stride' must be positive"), Error);
}
