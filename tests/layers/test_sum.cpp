// sum: hand-computed cases, the PyTorch fixture, accuracy, errors.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "layers/sum.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("sum: hand-computed values and gradients") {
    Tensor x = from_vector({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3}).requires_grad_();

    Tensor all = sum(x);
    CHECK(all.shape() == Shape{});
    CHECK(all.item() == 21.f);
    all.backward();  // dy = 1: every element contributes once
    CHECK(x.grad().to_vector() == std::vector<float>{1.f, 1.f, 1.f, 1.f, 1.f, 1.f});
    x.set_grad(Tensor());

    Tensor cols = sum(x, 0);
    CHECK(cols.shape() == Shape{3});
    CHECK(cols.to_vector() == std::vector<float>{5.f, 7.f, 9.f});
    cols.backward(from_vector({1.f, 2.f, 3.f}, {3}));  // each column's dy goes to both rows
    CHECK(x.grad().to_vector() == std::vector<float>{1.f, 2.f, 3.f, 1.f, 2.f, 3.f});
    x.set_grad(Tensor());

    Tensor rows = sum(x, -1, true);
    CHECK(rows.shape() == Shape{2, 1});
    CHECK(rows.to_vector() == std::vector<float>{6.f, 15.f});
    rows.backward(from_vector({10.f, -1.f}, {2, 1}));  // each row's dy goes to its three elements
    CHECK(x.grad().to_vector() == std::vector<float>{10.f, 10.f, 10.f, -1.f, -1.f, -1.f});

    CHECK(sum(x, 1, false).shape() == Shape{2});
    CHECK(sum(from_vector({7.f}, {})).item() == 7.f);  // a 0-D tensor sums to itself
}

TEST_CASE("sum: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("sum");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json p = fixture_params(fx, c);
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = p["dim"].is_null() ? sum(x) : sum(x, p["dim"].get<int64_t>(), p["keepdim"].get<bool>());
        // PyTorch accumulates in float, Strata in double: they may differ in the last bits.
        check_close(y, fx.get(c + ".y"), 1e-5, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 0, 0, c + " backward");
    }
}

TEST_CASE("sum: accumulates in double") {
    // 0.1f added a million times: a float accumulator drifts to about 100958; the exact sum of the float 0.1f
    // values, 100000.0015, rounds to 100000.
    CHECK(sum(full({1000000}, 0.1f)).item() == 100000.f);
    CHECK(sum(full({1000000, 2}, 0.1f), 0).to_vector() == std::vector<float>{100000.f, 100000.f});
    CHECK(sum(full({2, 1000000}, 0.1f), 1).to_vector() == std::vector<float>{100000.f, 100000.f});
}

TEST_CASE("sum: empty inputs") {
    Tensor x = zeros({0, 3}).requires_grad_();
    CHECK(sum(x).item() == 0.f);
    Tensor y = sum(x, 0);
    CHECK(y.to_vector() == std::vector<float>{0.f, 0.f, 0.f});
    y.backward(ones({3}));
    CHECK(x.grad().shape() == Shape{0, 3});
    CHECK(sum(x, 1, true).shape() == Shape{0, 1});
}

TEST_CASE("sum: errors") {
    CHECK_THROWS_WITH_AS(sum(zeros({2, 3}), 2),
                         doctest::Contains("sum: dim 2 is out of range for input of shape [2, 3] (expected -2 to 1)"),
                         Error);
    CHECK_THROWS_WITH_AS(sum(zeros({2, 3}), -3), doctest::Contains("sum: dim -3 is out of range"), Error);
    CHECK_THROWS_WITH_AS(sum(zeros({}), 0), doctest::Contains("sum: cannot reduce dimension 0 of a 0-D tensor"),
                         Error);
    CHECK_THROWS_WITH_AS(sum(zeros({2}, DType::I32)), doctest::Contains("sum: input must be F32, got I32"), Error);
}
