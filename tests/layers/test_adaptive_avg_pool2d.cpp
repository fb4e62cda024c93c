// adaptive_avg_pool2d: hand-computed overlapping bins and an output larger than the input, the PyTorch fixture
// (PSPNet's bins 1, 2, 3, 6), errors, the module and its registry entry. The gradient check, threads,
// non-contiguous inputs and CUDA parity: tests/op_cases.h.
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/random.h"
#include "framework/registry.h"
#include "layers/adaptive_avg_pool2d.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

namespace {

// This file's own random stream: its tests leave the default generator, which other test files draw from,
// alone.
Generator& test_gen() {
    static Generator gen(103);
    return gen;
}


}  // namespace

TEST_CASE("adaptive_avg_pool2d: hand-computed 3x3 -> 2x2, overlapping bins") {
    // bins per axis: [floor(0*3/2), ceil(1*3/2)) = [0, 2) and [floor(1*3/2), ceil(2*3/2)) = [1, 3): row/column 1
    // is in both
    Tensor x = from_vector({0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 3, 3}).requires_grad_();
    Tensor y = adaptive_avg_pool2d(x, 2);
    CHECK(y.to_vector() == std::vector<float>{2, 3, 5, 6});  // means of {0,1,3,4} {1,2,4,5} {3,4,6,7} {4,5,7,8}
    y.backward(from_vector({1, 2, 3, 4}, {1, 1, 2, 2}));
    // every bin has 4 elements: dx = (sum of dy over the bins holding the element) / 4
    CHECK(x.grad().to_vector() == std::vector<float>{0.25f, 0.75f, 0.5f, 1.0f, 2.5f, 1.5f, 0.75f, 1.75f, 1.0f});
}

TEST_CASE("adaptive_avg_pool2d: hand-computed output larger than the input") {
    // width 2 -> 3: bins [0, 1), [0, 2), [1, 2)
    Tensor x = from_vector({2, 4}, {1, 1, 1, 2}).requires_grad_();
    Tensor y = adaptive_avg_pool2d(x, {1, 3});
    CHECK(y.to_vector() == std::vector<float>{2, 3, 4});
    y.backward(from_vector({1, 2, 3}, {1, 1, 1, 3}));
    CHECK(x.grad().to_vector() == std::vector<float>{2, 4});  // 1 + 2/2 and 2/2 + 3
}

TEST_CASE("adaptive_avg_pool2d: output 1x1 is the global mean") {
    Tensor x = randn({2, 3, 13, 11}, test_gen());
    std::vector<float> xv = x.to_vector(), yv = adaptive_avg_pool2d(x, 1).to_vector();
    for (size_t plane = 0; plane < 6; ++plane) {
        double sum = 0;
        for (size_t i = 0; i < 13 * 11; ++i) sum += xv[plane * 13 * 11 + i];
        CHECK(yv[plane] == doctest::Approx(sum / (13 * 11)).epsilon(1e-5));
    }
}

TEST_CASE("adaptive_avg_pool2d: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("adaptive_avg_pool2d");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json p = fixture_params(fx, c);
        Size2 output_size(p["output_size"][0].get<int64_t>(), p["output_size"][1].get<int64_t>());
        // cases share their inputs (see gen_adaptive_avg_pool2d.py)
        Tensor x = fx.get(p["input"].get<std::string>() + ".x").clone().requires_grad_();
        Tensor y = adaptive_avg_pool2d(x, output_size);
        check_close(y, fx.get(c + ".y"), 1e-6, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-6, 1e-5, c + " backward");
    }
}

TEST_CASE("adaptive_avg_pool2d: errors") {
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(zeros({3, 5, 5}), 2),
                         doctest::Contains("adaptive_avg_pool2d: input must be 4-D (N,C,H,W), got shape [3, 5, 5]"),
                         Error);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(zeros({1, 3, 5, 5}, DType::I32), 2),
                         doctest::Contains("adaptive_avg_pool2d: input must be F32, got I32"), Error);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(zeros({1, 3, 0, 5}), 2),
                         doctest::Contains("adaptive_avg_pool2d: input must have non-zero C, H and W"), Error);
    CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(zeros({1, 3, 5, 5}), {2, 0}),
                         doctest::Contains("adaptive_avg_pool2d: output_size must be positive, got (2, 0)"), Error);
}

TEST_CASE("adaptive_avg_pool2d: module from the registry") {
    Tensor x = randn({2, 3, 13, 13}, test_gen());
    for (int64_t bin : {1, 2, 3, 6}) {
        auto m = create_layer("adaptive_avg_pool2d", {{"output_size", bin}});
        CHECK(m->type_name() == "AdaptiveAvgPool2d");
        CHECK(m->named_parameters().empty());
        check_close(m->forward(x), adaptive_avg_pool2d(x, bin), 0, 0, "registry bin " + std::to_string(bin));
    }
    auto m = create_layer("adaptive_avg_pool2d", {{"output_size", {2, 5}}});
    CHECK(m->forward(x).shape() == Shape{2, 3, 2, 5});
    AdaptiveAvgPool2d direct({2, 5});
    check_close(direct(x), m->forward(x), 0, 0, "constructor");

    CHECK_THROWS_WITH_AS(create_layer("adaptive_avg_pool2d", {}),
                         doctest::Contains("adaptive_avg_pool2d: missing required attribute 'output_size'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("adaptive_avg_pool2d", {{"output_size", 2}, {"kernel_size", 2}}),
                         doctest::Contains("unknown attribute 'kernel_size'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("adaptive_avg_pool2d", {{"output_size", 0}}),
                         doctest::Contains("AdaptiveAvgPool2d: output_size must be positive"), Error);
}
