// relu: a hand-computed case, the PyTorch fixture, NaN, the module and its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "framework/check.h"
#include "framework/registry.h"
#include "layers/relu.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("relu: hand-computed values and gradient") {
    Tensor x = from_vector({-2.f, -0.5f, 0.f, 0.5f, 3.f}, {5}).requires_grad_();
    Tensor y = relu(x);
    CHECK(y.to_vector() == std::vector<float>{0.f, 0.f, 0.f, 0.5f, 3.f});
    y.backward(from_vector({1.f, 2.f, 3.f, 4.f, 5.f}, {5}));
    // the gradient at exactly 0 is 0, as in PyTorch
    CHECK(x.grad().to_vector() == std::vector<float>{0.f, 0.f, 0.f, 4.f, 5.f});
}

TEST_CASE("relu: NaN stays NaN and passes its gradient, as in PyTorch") {
    // torch.relu(nan) is nan and its backward (threshold_backward: x <= 0 ? 0 : dy) passes dy through a NaN; a relu
    // that turned NaN into 0 would hide a poisoned network behind finite losses.
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    Tensor x = from_vector({nan, -1.f, inf, -inf, 2.f}, {5}).requires_grad_();
    Tensor y = relu(x);
    std::vector<float> yv = y.to_vector();
    CHECK(std::isnan(yv[0]));
    CHECK(yv[1] == 0.f);
    CHECK(yv[2] == inf);
    CHECK(yv[3] == 0.f);
    CHECK(yv[4] == 2.f);
    y.backward(from_vector({1.f, 2.f, 3.f, 4.f, 5.f}, {5}));
    CHECK(x.grad().to_vector() == std::vector<float>{1.f, 0.f, 3.f, 0.f, 5.f});
}

TEST_CASE("relu: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("relu");
    for (const std::string& c : fixture_cases(fx)) {
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = relu(x);
        check_close(y, fx.get(c + ".y"), 0, 0, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 0, 0, c + " backward");
    }
}

TEST_CASE("relu: module from the registry") {
    auto m = create_layer("relu");
    Tensor y = m->forward(from_vector({-1.f, 2.f}, {2}));
    CHECK(y.to_vector() == std::vector<float>{0.f, 2.f});
    CHECK_THROWS_WITH_AS(create_layer("relu", {{"inplace", true}}), doctest::Contains("unknown attribute 'inplace'"),
                         Error);
    CHECK_THROWS_WITH_AS(relu(zeros({2}, DType::I32)), doctest::Contains("relu: input must be F32"), Error);
}
