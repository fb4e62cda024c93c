// mean: hand-computed cases, the PyTorch fixture, errors.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "layers/mean.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("mean: hand-computed values and gradients") {
    Tensor x = from_vector({1.f, 2.f, 3.f, 4.f, 5.f, 9.f}, {2, 3}).requires_grad_();

    Tensor all = mean(x);
    CHECK(all.shape() == Shape{});
    CHECK(all.item() == 4.f);
    all.backward(from_vector({3.f}, {}));  // dx = 3 / 6 everywhere
    CHECK(x.grad().to_vector() == std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f});
    x.set_grad(Tensor());

    Tensor cols = mean(x, 0, true);
    CHECK(cols.shape() == Shape{1, 3});
    CHECK(cols.to_vector() == std::vector<float>{2.5f, 3.5f, 6.f});
    cols.backward(from_vector({2.f, 4.f, -6.f}, {1, 3}));  // dx = dy / 2 on both rows
    CHECK(x.grad().to_vector() == std::vector<float>{1.f, 2.f, -3.f, 1.f, 2.f, -3.f});
    x.set_grad(Tensor());

    Tensor rows = mean(x, -1);
    CHECK(rows.shape() == Shape{2});
    CHECK(rows.to_vector() == std::vector<float>{2.f, 6.f});
}

TEST_CASE("mean: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("mean");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json p = fixture_params(fx, c);
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = p["dim"].is_null() ? mean(x) : mean(x, p["dim"].get<int64_t>(), p["keepdim"].get<bool>());
        // PyTorch accumulates in float and divides by len; Strata accumulates in double and multiplies by the
        // float 1/len: the last bits may differ.
        check_close(y, fx.get(c + ".y"), 1e-6, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-7, 1e-6, c + " backward");
    }
}

TEST_CASE("mean: double accumulation, no drift") {
    CHECK(mean(full({1000000}, 0.1f)).item() == 0.1f);
}

TEST_CASE("mean: errors") {
    CHECK_THROWS_WITH_AS(mean(zeros({0, 3})),
                         doctest::Contains("mean: input is empty (shape [0, 3]); the mean of no elements is undefined"),
                         Error);
    CHECK_THROWS_WITH_AS(mean(zeros({2, 0}), 1), doctest::Contains("mean: dimension 1 of input shape [2, 0] has size 0"),
                         Error);
    CHECK(mean(zeros({0, 3}), 1).shape() == Shape{0});  // nothing to average per output, but no output either
    CHECK_THROWS_WITH_AS(mean(zeros({2, 3}), 5), doctest::Contains("mean: dim 5 is out of range"), Error);
    CHECK_THROWS_WITH_AS(mean(zeros({2}, DType::I32)), doctest::Contains("mean: input must be F32, got I32"), Error);
}
