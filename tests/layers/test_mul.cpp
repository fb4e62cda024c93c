// mul (tensor times scalar): a hand-computed case, the PyTorch fixture and errors.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "layers/mul.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("mul: hand-computed values and gradient") {
    Tensor x = from_vector({1.f, -2.f, 0.5f}, {3}).requires_grad_();
    Tensor y = x * 3.0f;
    CHECK(y.to_vector() == std::vector<float>{3.f, -6.f, 1.5f});
    CHECK((-0.5f * x).to_vector() == std::vector<float>{-0.5f, 1.f, -0.25f});
    y.backward(from_vector({1.f, 2.f, -1.f}, {3}));
    CHECK(x.grad().to_vector() == std::vector<float>{3.f, 6.f, -3.f});
}

TEST_CASE("mul: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("mul");
    for (const std::string& c : fixture_cases(fx)) {
        float s = fixture_params(fx, c)["s"].get<float>();
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = mul(x, s);
        check_close(y, fx.get(c + ".y"), 1e-7, 1e-6, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-7, 1e-6, c + " backward");
    }
}

TEST_CASE("mul: errors") {
    CHECK_THROWS_WITH_AS(mul(zeros({2}, DType::I32), 2.0f), doctest::Contains("mul: input must be F32, got I32"),
                         Error);
    CHECK_THROWS_WITH_AS(Tensor() * 2.0f, doctest::Contains("mul: input is an undefined tensor"), Error);
}
