// cross_entropy: hand-computed cases, the PyTorch fixture ((N,C,H,W) and (N,C) forms, ignored pixels, large
// logits), the all-ignored convention and the label errors.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "framework/check.h"
#include "framework/parallel.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("cross_entropy: hand-computed values and gradient, with an ignored sample") {
    // row 0: logits (0, 0), label 0 -> softmax (1/2, 1/2), loss ln 2
    // row 1: label 255, ignored
    // row 2: logits (0, ln 3), label 1 -> softmax (1/4, 3/4), loss ln(4/3)
    Tensor logits = from_vector({0.f, 0.f, 5.f, -5.f, 0.f, std::log(3.f)}, {3, 2}).requires_grad_();
    Tensor target = from_vector_i32({0, 255, 1}, {3});
    Tensor loss = cross_entropy(logits, target);
    CHECK(loss.dim() == 0);
    CHECK(loss.item() == doctest::Approx((std::log(2.0) + std::log(4.0 / 3.0)) / 2).epsilon(1e-6));
    // (softmax - onehot) / count with count = 2, times dloss = 2
    loss.backward(full({}, 2.f));
    check_close(logits.grad(), from_vector({-0.5f, 0.5f, 0.f, 0.f, 0.25f, -0.25f}, {3, 2}), 1e-6, 0, "dlogits");
}

TEST_CASE("cross_entropy: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("cross_entropy");
    std::vector<std::string> cases = fixture_cases(fx);
    CHECK(cases.size() == 7);
    for (const std::string& c : cases) {
        int64_t ignore_index = fixture_params(fx, c)["ignore_index"].get<int64_t>();
        Tensor logits = fx.get(c + ".logits").clone().requires_grad_();
        Tensor loss = cross_entropy(logits, fx.get(c + ".target"), ignore_index);
        check_close(loss, fx.get(c + ".loss"), 1e-5, 1e-5, c + " forward");
        loss.backward(fx.get(c + ".dloss"));
        check_close(logits.grad(), fx.get(c + ".dlogits"), 1e-6, 1e-5, c + " backward");
    }
}

TEST_CASE("cross_entropy: all pixels ignored gives loss 0 and gradient 0 (PyTorch: NaN)") {
    Tensor logits = randn({2, 3, 2, 2}).requires_grad_();
    Tensor target = full({2, 2, 2}, 255.f, DType::I32);
    Tensor loss = cross_entropy(logits, target);
    CHECK(loss.item() == 0.f);
    loss.backward();
    check_close(logits.grad(), zeros({2, 3, 2, 2}), 0, 0, "dlogits");
    // an empty batch too
    CHECK(cross_entropy(zeros({0, 3}), zeros({0}, DType::I32)).item() == 0.f);
}

TEST_CASE("cross_entropy: large logits stay finite") {
    // without the max subtraction exp(1e4) overflows to inf
    Tensor logits = from_vector({1e4f, 0.f, -1e4f, 0.f, 1e4f, 5e3f}, {2, 3}).requires_grad_();
    Tensor loss = cross_entropy(logits, from_vector_i32({0, 2}, {2}));
    // row 0 is certain and right (loss 0); row 1 puts label 2 5e3 below the best class (loss 5e3)
    CHECK(loss.item() == doctest::Approx(2500.0));
    loss.backward();
    check_close(logits.grad(), from_vector({0.f, 0.f, 0.f, 0.f, 0.5f, -0.5f}, {2, 3}), 1e-6, 0, "dlogits");
}

TEST_CASE("cross_entropy: against a double-precision softmax, logits spread over +-60, blocks of odd length") {
    // 77 pixels per image: a block of 64 and one of 13 (the kernels' blocks of pixels); a spread of +-60 puts some
    // exp arguments below -87 (the kernels' vector exp clamps there); every 5th pixel ignored.
    const int64_t n = 3, c = 21, h = 7, w = 11, s = h * w;
    Tensor logits = mul(randn({n, c, h, w}), 20.0f).requires_grad_();
    std::vector<int32_t> labels(size_t(n * s));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = i % 5 == 2 ? 255 : int32_t(i * 7 % c);
    Tensor loss = cross_entropy(logits, from_vector_i32(labels, {n, h, w}));
    loss.backward();
    const std::vector<float> x = logits.to_vector(), dx = logits.grad().to_vector();
    double total = 0;
    int64_t count = 0;
    std::vector<double> want(x.size(), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t p = 0; p < s; ++p) {
            const int32_t label = labels[size_t(i * s + p)];
            if (label == 255) continue;
            auto at = [&](int64_t k) { return double(x[size_t((i * c + k) * s + p)]); };
            double m = at(0), sum = 0;
            for (int64_t k = 1; k < c; ++k) m = std::max(m, at(k));
            for (int64_t k = 0; k < c; ++k) sum += std::exp(at(k) - m);
            total += m + std::log(sum) - at(label);
            ++count;
            for (int64_t k = 0; k < c; ++k) want[size_t((i * c + k) * s + p)] = std::exp(at(k) - m) / sum;
            want[size_t((i * c + label) * s + p)] -= 1.0;
        }
    CHECK(double(loss.item()) == doctest::Approx(total / double(count)).epsilon(1e-6));
    for (size_t i = 0; i < want.size(); ++i)
        REQUIRE(std::abs(double(dx[i]) - want[i] / double(count)) <= 1e-6 / double(count));
}

TEST_CASE("cross_entropy: (N,C,H,W) equals the (N*H*W, C) form") {
    Tensor logits = randn({2, 4, 3, 5});
    std::vector<int32_t> labels(30);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = i % 7 == 3 ? 255 : int32_t(i % 4);
    Tensor pixels = cross_entropy(logits, from_vector_i32(labels, {2, 3, 5}));
    // (N, C, H, W) -> (N, H, W, C) -> (N*H*W, C): the same pixels in the same order, a non-contiguous input
    Tensor rows = cross_entropy(logits.permute({0, 2, 3, 1}).reshape({30, 4}), from_vector_i32(labels, {30}));
    CHECK(pixels.item() == doctest::Approx(rows.item()).epsilon(1e-6));
}

TEST_CASE("cross_entropy: a bad label is an error naming its value and position") {
    std::vector<int32_t> labels(8, 1);
    labels[5] = 7;  // n = 1, h = 0, w = 1 in (2, 2, 2)
    Tensor logits = zeros({2, 3, 2, 2});
    CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector_i32(labels, {2, 2, 2})),
                         doctest::Contains("cross_entropy: target has label 7 at (n=1, h=0, w=1), which is neither a "
                                           "class in [0, 3) nor the ignore label 255"),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector_i32(labels, {2, 2, 2})),
                         doctest::Contains("use the labelTrainIds images, not labelIds"), Error);
    labels[5] = 1;
    labels[2] = -1;
    CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector_i32(labels, {2, 2, 2})),
                         doctest::Contains("label -1 at (n=0, h=1, w=0)"), Error);
    // the first bad label in memory order is reported
    labels[6] = 40;
    CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector_i32(labels, {2, 2, 2})),
                         doctest::Contains("label -1 at"), Error);
    // 255 is a bad label when another ignore_index is chosen
    CHECK_THROWS_WITH_AS(cross_entropy(zeros({3, 4}), from_vector_i32({0, 255, 1}, {3}), -100),
                         doctest::Contains("label 255 at (n=1), which is neither a class in [0, 4) nor the ignore "
                                           "label -100"),
                         Error);
}

TEST_CASE("cross_entropy: argument errors") {
    Tensor logits = zeros({2, 3, 4, 5});
    CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2, 4, 5})),
                         doctest::Contains("cross_entropy: target must be I32 class indices, got F32"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2, 4, 5}, DType::I64)),
                         doctest::Contains("target must be I32 class indices, got I64"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2, 5, 4}, DType::I32)),
                         doctest::Contains("cross_entropy: target must have shape [2, 4, 5] (N,H,W) for logits of "
                                           "shape [2, 3, 4, 5], got [2, 5, 4]"),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy(zeros({4, 3}), zeros({4, 1}, DType::I32)),
                         doctest::Contains("target must have shape [4] (N) for logits of shape [4, 3], got [4, 1]"),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3, 4}), zeros({2, 4}, DType::I32)),
                         doctest::Contains("logits must be 4-D (N,C,H,W) or 2-D (N,C), got shape [2, 3, 4]"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}, DType::I32), zeros({2}, DType::I32)),
                         doctest::Contains("cross_entropy: logits must be F32, got I32"), Error);
}
