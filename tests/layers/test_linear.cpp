// linear: a hand-computed case, the PyTorch fixture, errors, the module and its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <cmath>

#include "framework/check.h"
#include "framework/registry.h"
#include "layers/linear.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("linear: hand-computed values and gradients") {
    Tensor x = from_vector({1.f, 2.f, 3.f, 4.f}, {2, 2}).requires_grad_();
    Tensor w = from_vector({1.f, 0.f, 0.f, 1.f, 1.f, 1.f}, {3, 2}).requires_grad_();
    Tensor b = from_vector({0.5f, -1.f, 2.f}, {3}).requires_grad_();
    Tensor y = linear(x, w, b);
    // row r: (x0 + 0.5, x1 - 1, x0 + x1 + 2)
    CHECK(y.shape() == Shape{2, 3});
    CHECK(y.to_vector() == std::vector<float>{1.5f, 1.f, 5.f, 3.5f, 3.f, 9.f});
    y.backward(from_vector({1.f, 0.f, 0.f, 0.f, 1.f, 1.f}, {2, 3}));
    // dx = dy·W, dW = dyᵀ·x, db = column sums of dy
    CHECK(x.grad().to_vector() == std::vector<float>{1.f, 0.f, 1.f, 2.f});
    CHECK(w.grad().to_vector() == std::vector<float>{1.f, 2.f, 3.f, 4.f, 3.f, 4.f});
    CHECK(b.grad().to_vector() == std::vector<float>{1.f, 1.f, 1.f});

    CHECK(linear(x, w).to_vector() == std::vector<float>{1.f, 2.f, 3.f, 3.f, 4.f, 7.f});  // no bias
}

TEST_CASE("linear: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("linear");
    for (const std::string& c : fixture_cases(fx)) {
        bool has_bias = fixture_params(fx, c)["bias"].get<bool>();
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor w = fx.get(c + ".weight").clone().requires_grad_();
        Tensor b = has_bias ? fx.get(c + ".bias").clone().requires_grad_() : Tensor();
        Tensor y = linear(x, w, b);
        // GEMMs sum in a different order than PyTorch's: allow float rounding.
        check_close(y, fx.get(c + ".y"), 1e-5, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-5, 1e-5, c + " backward x");
        check_close(w.grad(), fx.get(c + ".dweight"), 1e-5, 1e-5, c + " backward weight");
        if (has_bias) check_close(b.grad(), fx.get(c + ".dbias"), 1e-5, 1e-5, c + " backward bias");
    }
}

TEST_CASE("linear: gradients only where needed, and an empty batch") {
    Tensor x = randn({3, 4});
    Tensor w = randn({2, 4}).requires_grad_();
    Tensor b = randn({2});
    linear(x, w, b).backward(ones({3, 2}));
    CHECK(w.grad().shape() == Shape{2, 4});
    CHECK_FALSE(x.grad().defined());
    CHECK_FALSE(b.grad().defined());

    Tensor e = zeros({0, 4}).requires_grad_();
    Tensor w2 = randn({2, 4}).requires_grad_();
    Tensor b2 = randn({2}).requires_grad_();
    Tensor y = linear(e, w2, b2);
    CHECK(y.shape() == Shape{0, 2});
    y.backward(zeros({0, 2}));
    CHECK(w2.grad().to_vector() == std::vector<float>(8, 0.f));
    CHECK(b2.grad().to_vector() == std::vector<float>{0.f, 0.f});
    CHECK(e.grad().shape() == Shape{0, 4});
}

TEST_CASE("linear: errors") {
    Tensor w = zeros({3, 4});
    CHECK_THROWS_WITH_AS(linear(zeros({2, 5}), w),
                         doctest::Contains("linear: input must be (..., in_features) with in_features 4 from weight "
                                           "[3, 4], got input shape [2, 5]"),
                         Error);
    CHECK_THROWS_WITH_AS(linear(zeros({}), w), doctest::Contains("got input shape []"), Error);
    CHECK_THROWS_WITH_AS(linear(zeros({2, 4}), zeros({3, 4, 1})),
                         doctest::Contains("linear: weight must be 2-D (out_features, in_features), got shape [3, 4, 1]"),
                         Error);
    CHECK_THROWS_WITH_AS(linear(zeros({2, 4}), w, zeros({4})),
                         doctest::Contains("linear: bias must have shape [3] (out_features of weight [3, 4]), got [4]"),
                         Error);
    CHECK_THROWS_WITH_AS(linear(zeros({2, 4}, DType::I32), w), doctest::Contains("linear: input must be F32"), Error);
    CHECK_THROWS_WITH_AS(linear(zeros({2, 0}), zeros({3, 0})),
                         doctest::Contains("linear: weight must have at least one row and one column"), Error);
}

TEST_CASE("linear: module and registry") {
    auto m = create_layer("linear", {{"in_features", 4}, {"out_features", 3}});
    CHECK(m->type_name() == "Linear");
    NamedTensors params = m->named_parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "weight");
    CHECK(params[0].second.shape() == Shape{3, 4});
    CHECK(params[1].first == "bias");
    CHECK(params[1].second.shape() == Shape{3});
    // PyTorch's default initialisation: U(-1/sqrt(in), 1/sqrt(in)) = U(-0.5, 0.5) for both.
    for (const auto& [name, t] : params) {
        std::vector<float> v = t.to_vector();
        for (float e : v) CHECK(std::abs(e) <= 0.5f);
        CHECK(v.front() != v.back());
    }
    Tensor y = m->forward(randn({2, 5, 4}));
    CHECK(y.shape() == Shape{2, 5, 3});

    auto no_bias = create_layer("linear", {{"in_features", 4}, {"out_features", 3}, {"bias", false}});
    REQUIRE(no_bias->named_parameters().size() == 1);
    CHECK(no_bias->named_parameters()[0].first == "weight");
    Linear direct(4, 3, false);
    CHECK_FALSE(direct.bias.defined());
    CHECK(direct.forward(ones({1, 4})).shape() == Shape{1, 3});

    CHECK_THROWS_WITH_AS(create_layer("linear", {{"in_features", 4}, {"out_features", 3}, {"biass", false}}),
                         doctest::Contains("unknown attribute 'biass'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("linear", {{"out_features", 3}}),
                         doctest::Contains("missing required attribute 'in_features'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("linear", {{"in_features", 0}, {"out_features", 3}}),
                         doctest::Contains("Linear: in_features and out_features must be positive"), Error);
}
