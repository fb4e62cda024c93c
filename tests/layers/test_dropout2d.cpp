// dropout2d: a hand-computed mask, the reference fixture (our mask reimplemented in Python, PyTorch's eval mode),
// the kept fraction, determinism, errors, and the module and its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "framework/check.h"
#include "framework/random.h"
#include "framework/registry.h"
#include "layers/dropout2d.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("dropout2d: hand-computed mask, output and gradient") {
    // Generator(8)'s first draw is the key 0x9e5651b0ef953636; u(plane) = u64_to_unit_float(random_u64(key, plane))
    // is {0.2666, 0.5300, 0.5400, 0.4133} for the planes 0..3, so with p = 0.5 planes 1 and 2 are kept (u >= p)
    // and scaled by 1/(1-p) = 2.
    Generator gen(8);
    CHECK(random_u64(8, 0) == 0x9e5651b0ef953636ULL);
    Tensor x = from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {1, 4, 1, 2}).requires_grad_();
    Tensor y = dropout2d(x, 0.5f, true, gen);
    CHECK(y.to_vector() == std::vector<float>{0, 0, 6, 8, 10, 12, 0, 0});
    CHECK(gen.counter() == 1);  // exactly one draw per call
    y.backward(from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {1, 4, 1, 2}));
    CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 6, 8, 10, 12, 0, 0});  // dy * keep * 2
}

TEST_CASE("dropout2d: matches the reference mask and PyTorch exactly") {
    SafetensorsFile fx = load_fixture("dropout2d");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json params = fixture_params(fx, c);
        Generator gen(params["seed"].get<uint64_t>());
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = dropout2d(x, float(params["p"]), params["training"].get<bool>(), gen);
        // the same float32 operations on both sides: equal to the bit
        check_close(y, fx.get(c + ".y"), 0, 0, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 0, 0, c + " backward");
    }
}

TEST_CASE("dropout2d: the kept fraction is 1 - p, whole planes, scaled by 1/(1-p)") {
    // 100000 planes of 2 pixels, fixed seed. The kept fraction has standard deviation sqrt(p(1-p)/100000) ~ 0.0015,
    // so the tolerance 0.01 is ~7 standard deviations; with the fixed seed the result never changes anyway.
    const int64_t N = 100, C = 1000, HW = 2;
    for (float p : {0.1f, 0.3f, 0.7f}) {
        Generator gen(2024);
        Tensor y = dropout2d(ones({N, C, 1, HW}), p, true, gen);
        std::vector<float> v = y.to_vector();
        const float scale = 1.0f / (1.0f - p);
        int64_t kept = 0, bad = 0;
        double total = 0;
        for (int64_t plane = 0; plane < N * C; ++plane) {
            float a = v[size_t(plane * HW)], b = v[size_t(plane * HW + 1)];
            if (a != b || (a != 0.0f && a != scale)) ++bad;  // a plane is dropped or kept as a whole
            if (a != 0.0f) ++kept;
            total += a + b;
        }
        CHECK(bad == 0);
        CHECK(std::abs(double(kept) / double(N * C) - (1.0 - p)) < 0.01);
        // E[y] = x: the mean of the output stays near 1 (standard deviation at most ~0.005 here, for p = 0.7)
        CHECK(std::abs(total / double(N * C * HW) - 1.0) < 0.03);
    }
}

TEST_CASE("dropout2d: determinism and generator use") {
    Tensor x = randn({4, 16, 2, 3});
    Generator a(5), b(5);
    std::vector<float> ya1 = dropout2d(x, 0.5f, true, a).to_vector();
    std::vector<float> yb1 = dropout2d(x, 0.5f, true, b).to_vector();
    CHECK(ya1 == yb1);  // same seed, same mask
    std::vector<float> ya2 = dropout2d(x, 0.5f, true, a).to_vector();
    CHECK(ya1 != ya2);  // the next call draws a new key: a different mask (64 planes)
    CHECK(a.counter() == 2);

    // eval and p == 0 return the input itself and draw nothing
    CHECK(dropout2d(x, 0.5f, false, a).is_same(x));
    CHECK(dropout2d(x, 0.0f, true, a).is_same(x));
    CHECK(a.counter() == 2);

    // p == 1 drops everything; the gradient is zero
    Tensor xg = randn({2, 3, 2, 2}).requires_grad_();
    Tensor y1 = dropout2d(xg, 1.0f, true, a);
    for (float v : y1.to_vector()) CHECK(v == 0.0f);
    y1.backward(ones({2, 3, 2, 2}));
    for (float v : xg.grad().to_vector()) CHECK(v == 0.0f);

    // the overload without a Generator uses default_generator(); its state is restored afterwards
    Generator& dg = default_generator();
    uint64_t saved_seed = dg.seed(), saved_counter = dg.counter();
    dg.manual_seed(5);
    CHECK(dropout2d(x, 0.5f, true).to_vector() == yb1);
    CHECK(dg.counter() == 1);
    dg.set_state(saved_seed, saved_counter);

    // a non-contiguous input gives the mask of its (n, c) planes, as its contiguous copy does
    Tensor nhwc = randn({2, 3, 3, 5});
    Tensor xv = nhwc.permute({0, 3, 1, 2});
    Generator c1(9), c2(9);
    CHECK(dropout2d(xv, 0.5f, true, c1).to_vector() == dropout2d(xv.contiguous(), 0.5f, true, c2).to_vector());
}

TEST_CASE("dropout2d: errors") {
    Generator gen(0);
    Tensor x = randn({2, 3, 2, 2});
    CHECK_THROWS_WITH_AS(dropout2d(randn({3, 2, 2}), 0.5f, true, gen),
                         doctest::Contains("dropout2d: input must be 4-D (N,C,H,W), got shape [3, 2, 2]"), Error);
    CHECK_THROWS_WITH_AS(dropout2d(zeros({2, 3, 2, 2}, DType::I32), 0.5f, true, gen),
                         doctest::Contains("dropout2d: input must be F32"), Error);
    CHECK_THROWS_WITH_AS(dropout2d(x, -0.1f, true, gen), doctest::Contains("dropout2d: p must be in [0, 1], got -0.1"),
                         Error);
    CHECK_THROWS_WITH_AS(dropout2d(x, 1.5f, false, gen), doctest::Contains("dropout2d: p must be in [0, 1], got 1.5"),
                         Error);
    CHECK_THROWS_WITH_AS(dropout2d(x, std::numeric_limits<float>::quiet_NaN(), true, gen),
                         doctest::Contains("dropout2d: p must be in [0, 1]"), Error);
    CHECK(gen.counter() == 0);
}

TEST_CASE("dropout2d: module and registry") {
    auto m = create_layer("dropout2d", {{"p", 0.25}});
    CHECK(m->type_name() == "Dropout2d");
    CHECK(m->state_dict().empty());
    auto* d = dynamic_cast<Dropout2d*>(m.get());
    REQUIRE(d != nullptr);
    CHECK(d->p == 0.25f);
    CHECK(dynamic_cast<Dropout2d*>(create_layer("dropout2d").get())->p == 0.5f);  // PyTorch's default

    Tensor x = ones({4, 32, 2, 2});
    Generator& dg = default_generator();
    uint64_t saved_seed = dg.seed(), saved_counter = dg.counter();
    dg.manual_seed(3);
    m->train();
    std::vector<float> y = m->forward(x).to_vector();
    dg.manual_seed(3);
    CHECK(y == dropout2d(x, 0.25f, true).to_vector());  // training: the default generator's stream
    int64_t zeros_count = 0;
    for (float v : y) zeros_count += v == 0.0f;
    CHECK(zeros_count > 0);
    CHECK(zeros_count < int64_t(y.size()));
    dg.set_state(saved_seed, saved_counter);
    m->eval();
    CHECK(m->forward(x).is_same(x));  // eval: the identity

    CHECK_THROWS_WITH_AS(create_layer("dropout2d", {{"inplace", true}}),
                         doctest::Contains("unknown attribute 'inplace'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("dropout2d", {{"p", 1.5}}), doctest::Contains("Dropout2d: p must be in [0, 1]"),
                         Error);
}
