// concat: hand-computed cases, the PyTorch fixture (dims 0..3 and -1, 2 to 4 inputs), errors.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "layers/concat.h"
#include "tests/fixtures.h"
#include "tests/gradcheck.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("concat: hand-computed values and gradient") {
    // [[1, 2], [3, 4]] and [[5], [6]] along dim 1 -> [[1, 2, 5], [3, 4, 6]]
    Tensor a = from_vector({1.f, 2.f, 3.f, 4.f}, {2, 2}).requires_grad_();
    Tensor b = from_vector({5.f, 6.f}, {2, 1}).requires_grad_();
    Tensor y = concat({a, b}, 1);
    CHECK(y.shape() == Shape{2, 3});
    CHECK(y.to_vector() == std::vector<float>{1.f, 2.f, 5.f, 3.f, 4.f, 6.f});
    // each input gets its own columns of dy back
    y.backward(from_vector({10.f, 20.f, 30.f, 40.f, 50.f, 60.f}, {2, 3}));
    CHECK(a.grad().to_vector() == std::vector<float>{10.f, 20.f, 40.f, 50.f});
    CHECK(b.grad().to_vector() == std::vector<float>{30.f, 60.f});

    // along dim 0 (the default is 1): rows stacked
    Tensor z = concat({a.detach(), from_vector({7.f, 8.f}, {1, 2})}, 0);
    CHECK(z.shape() == Shape{3, 2});
    CHECK(z.to_vector() == std::vector<float>{1.f, 2.f, 3.f, 4.f, 7.f, 8.f});
}

TEST_CASE("concat: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("concat");
    std::vector<std::string> cases = fixture_cases(fx);
    CHECK(cases.size() == 6);
    for (const std::string& c : cases) {
        nlohmann::json p = fixture_params(fx, c);
        int64_t k = p["inputs"].get<int64_t>();
        std::vector<Tensor> xs;
        for (int64_t i = 0; i < k; ++i) xs.push_back(fx.get(c + ".x" + std::to_string(i)).clone().requires_grad_());
        Tensor y = concat(xs, p["dim"].get<int64_t>());
        check_close(y, fx.get(c + ".y"), 0, 0, c + " forward");
        y.backward(fx.get(c + ".dy"));
        for (int64_t i = 0; i < k; ++i)
            check_close(xs[size_t(i)].grad(), fx.get(c + ".dx" + std::to_string(i)), 0, 0,
                        c + " backward of input " + std::to_string(i));
    }
}

TEST_CASE("concat: only the inputs that require grad get one") {
    Tensor a = randn({2, 3}).requires_grad_();
    Tensor b = randn({2, 2});  // a constant
    Tensor c = randn({2, 1}).requires_grad_();
    Tensor y = concat({a, b, c}, 1);
    y.backward(ones({2, 6}));
    CHECK(a.grad().shape() == Shape{2, 3});
    CHECK_FALSE(b.grad().defined());
    CHECK(c.grad().to_vector() == std::vector<float>{1.f, 1.f});
    // no input requires grad: no graph
    CHECK_FALSE(concat({b, b}, 0).requires_grad());
}

TEST_CASE("concat: non-contiguous inputs, a single input and an empty input") {
    Tensor a = randn({3, 2}).requires_grad_();
    Tensor b = randn({2, 2}).requires_grad_();
    // a^T is (2, 3): a transposed view
    Tensor y = concat({a.transpose(0, 1), b}, 1);
    check_close(y, concat({a.transpose(0, 1).contiguous(), b}, 1), 0, 0, "transposed input");
    gradcheck("concat transposed", [](const std::vector<Tensor>& in) { return concat({in[0].transpose(0, 1), in[1]}, 1); },
              {a, b});

    check_close(concat({b}, 0), b, 0, 0, "one input");
    Tensor none = zeros({2, 0});
    check_close(concat({b, none}, 1), b, 0, 0, "an input of size 0 along dim");
}

TEST_CASE("concat: errors") {
    CHECK_THROWS_WITH_AS(concat({}, 1), doctest::Contains("concat: needs at least one tensor"), Error);
    CHECK_THROWS_WITH_AS(concat({zeros({2, 3, 4, 4}), zeros({2, 5, 4, 4}), zeros({2, 5, 3, 4})}, 1),
                         doctest::Contains("concat: tensor 2 has shape [2, 5, 3, 4] but tensor 0 has shape "
                                           "[2, 3, 4, 4]; all sizes except dim 1 must match"),
                         Error);
    CHECK_THROWS_WITH_AS(concat({zeros({2, 3}), zeros({2, 3, 1})}, 0),
                         doctest::Contains("tensor 1 has shape [2, 3, 1] but tensor 0 has shape [2, 3]"), Error);
    CHECK_THROWS_WITH_AS(concat({zeros({2, 3}), zeros({2, 3})}, 2),
                         doctest::Contains("concat: dim 2 is out of range for 2-D tensors"), Error);
    CHECK_THROWS_WITH_AS(concat({zeros({2, 3}), zeros({2, 3})}, -3), doctest::Contains("expected a dim in [-2, 1]"),
                         Error);
    CHECK_THROWS_WITH_AS(concat({zeros({2, 3}), zeros({2, 3}, DType::I32)}, 0),
                         doctest::Contains("concat: tensor 1 must be F32, got I32"), Error);
    CHECK_THROWS_WITH_AS(concat({zeros({2}), Tensor()}, 0),
                         doctest::Contains("concat: tensor 1 is an undefined tensor"), Error);
}
