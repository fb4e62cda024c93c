// add: a hand-computed case, the PyTorch fixture, aliasing and errors.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "layers/add.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("add: hand-computed values and gradient") {
    Tensor a = from_vector({1.f, -2.f, 3.5f, 0.f}, {2, 2}).requires_grad_();
    Tensor b = from_vector({0.5f, 2.f, -1.f, 4.f}, {2, 2}).requires_grad_();
    Tensor y = a + b;
    CHECK(y.shape() == Shape{2, 2});
    CHECK(y.to_vector() == std::vector<float>{1.5f, 0.f, 2.5f, 4.f});
    y.backward(from_vector({1.f, 2.f, 3.f, 4.f}, {2, 2}));
    CHECK(a.grad().to_vector() == std::vector<float>{1.f, 2.f, 3.f, 4.f});
    CHECK(b.grad().to_vector() == std::vector<float>{1.f, 2.f, 3.f, 4.f});
}

TEST_CASE("add: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("add");
    for (const std::string& c : fixture_cases(fx)) {
        Tensor a = fx.get(c + ".a").clone().requires_grad_();
        Tensor b = fx.get(c + ".b").clone().requires_grad_();
        Tensor y = add(a, b);
        check_close(y, fx.get(c + ".y"), 0, 0, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(a.grad(), fx.get(c + ".da"), 0, 0, c + " backward a");
        check_close(b.grad(), fx.get(c + ".db"), 0, 0, c + " backward b");
    }
}

TEST_CASE("add: shared gradients and the same tensor twice") {
    // The backward hands one dy to both inputs; the engine must not let one accumulation leak into the other.
    Tensor x = from_vector({1.f, 2.f}, {2}).requires_grad_();
    Tensor y = add(x, x);
    CHECK(y.to_vector() == std::vector<float>{2.f, 4.f});
    y.backward(from_vector({3.f, -1.f}, {2}));
    CHECK(x.grad().to_vector() == std::vector<float>{6.f, -2.f});

    // A residual connection: out = f(x) + x with f(x) = x + c, so dout/dx = 2.
    Tensor w = from_vector({1.f, 2.f, 3.f}, {3}).requires_grad_();
    Tensor c = from_vector({10.f, 20.f, 30.f}, {3});
    Tensor dy = from_vector({1.f, 1.f, 2.f}, {3});
    (add(w, c) + w).backward(dy);
    CHECK(w.grad().to_vector() == std::vector<float>{2.f, 2.f, 4.f});
    CHECK(dy.to_vector() == std::vector<float>{1.f, 1.f, 2.f});  // the caller's gradient is left untouched

    // Only the input that requires grad gets one.
    Tensor p = from_vector({1.f}, {1}).requires_grad_();
    Tensor q = from_vector({2.f}, {1});
    add(q, p).backward(from_vector({5.f}, {1}));
    CHECK(p.grad().to_vector() == std::vector<float>{5.f});
    CHECK_FALSE(q.grad().defined());
}

TEST_CASE("add: errors") {
    CHECK_THROWS_WITH_AS(add(zeros({2, 3}), zeros({3, 2})),
                         doctest::Contains("add: a and b must have the same shape (no broadcasting), got a [2, 3] "
                                           "and b [3, 2]"),
                         Error);
    CHECK_THROWS_WITH_AS(zeros({4}) + zeros({1}), doctest::Contains("got a [4] and b [1]"), Error);
    CHECK_THROWS_WITH_AS(add(zeros({2}, DType::I32), zeros({2})), doctest::Contains("add: a must be F32"), Error);
    CHECK_THROWS_WITH_AS(add(zeros({2}), Tensor()), doctest::Contains("add: b is an undefined tensor"), Error);
}
