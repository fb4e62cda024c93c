// upsample_bilinear2d: hand-computed cases, the PyTorch fixture (sizes and scale factors, both align_corners),
// PSPNet's corner pinning, errors, and the module with its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/registry.h"
#include "layers/upsample_bilinear2d.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("upsample_bilinear2d: hand-computed, align_corners = true") {
    // 2x2 -> 3x3: the corners are kept, the middle row/column are the averages of their neighbours.
    Tensor x = from_vector({1.f, 2.f, 3.f, 4.f}, {1, 1, 2, 2}).requires_grad_();
    Tensor y = upsample_bilinear2d(x, Size2(3, 3), true);
    CHECK(y.shape() == Shape{1, 1, 3, 3});
    check_close(y, from_vector({1.f, 1.5f, 2.f, 2.f, 2.5f, 3.f, 3.f, 3.5f, 4.f}, {1, 1, 3, 3}), 1e-6, 0, "forward");
    // Along each axis an input pixel receives weight 1 (its own corner) + 0.5 (the middle): 1.5 * 1.5 in 2-D.
    y.backward(ones({1, 1, 3, 3}));
    check_close(x.grad(), full({1, 1, 2, 2}, 2.25f), 1e-6, 0, "backward");
}

TEST_CASE("upsample_bilinear2d: hand-computed, align_corners = false") {
    // 1x2 -> 1x4: src = max((o + 0.5) * 0.5 - 0.5, 0) = 0, 0.25, 0.75, 1.25; the last clamps its upper neighbour
    // to index 1, so it reads x[1] alone.
    Tensor x = from_vector({0.f, 4.f}, {1, 1, 1, 2}).requires_grad_();
    Tensor y = upsample_bilinear2d(x, Size2(1, 4), false);
    check_close(y, from_vector({0.f, 1.f, 3.f, 4.f}, {1, 1, 1, 4}), 1e-6, 0, "forward");
    // dx0 = 1*1 + 2*0.75 + 3*0.25 = 3.25,  dx1 = 2*0.25 + 3*0.75 + 4*1 = 6.75
    y.backward(from_vector({1.f, 2.f, 3.f, 4.f}, {1, 1, 1, 4}));
    check_close(x.grad(), from_vector({3.25f, 6.75f}, {1, 1, 1, 2}), 1e-6, 0, "backward");
}

TEST_CASE("upsample_bilinear2d: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("upsample_bilinear2d");
    std::vector<std::string> cases = fixture_cases(fx);
    CHECK(cases.size() == 16);
    for (const std::string& c : cases) {
        nlohmann::json p = fixture_params(fx, c);
        bool align_corners = p["align_corners"].get<bool>();
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y;
        if (p.contains("size"))
            y = upsample_bilinear2d(x, Size2(p["size"][0].get<int64_t>(), p["size"][1].get<int64_t>()), align_corners);
        else
            y = upsample_bilinear2d_scale(x, p["scale_factor"][0].get<double>(), p["scale_factor"][1].get<double>(),
                                          align_corners);
        check_close(y, fx.get(c + ".y"), 1e-5, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-5, 1e-5, c + " backward");
    }
}

TEST_CASE("upsample_bilinear2d: align_corners pins every 8th output to an input pixel (PSPNet's 8k+1 zoom)") {
    // 8 -> 57 = 8 * 7 + 1 is the small analogue of PSPNet's 60 -> 473: output 8 * i is exactly input i.
    Tensor x = randn({1, 2, 8, 8});
    Tensor y = upsample_bilinear2d(x, Size2(57, 57), true);
    std::vector<float> xv = x.to_vector(), yv = y.to_vector();
    for (int64_t p = 0; p < 2; ++p)
        for (int64_t i = 0; i < 8; ++i)
            for (int64_t j = 0; j < 8; ++j)
                CHECK(yv[size_t((p * 57 + 8 * i) * 57 + 8 * j)] == xv[size_t((p * 8 + i) * 8 + j)]);
    // A 1x1 map (the bin-1 pyramid branch) upsamples to a constant.
    Tensor one = from_vector({2.5f, -1.f}, {1, 2, 1, 1});
    Tensor b = upsample_bilinear2d(one, Size2(6, 5), true);
    std::vector<float> bv = b.to_vector();
    for (size_t i = 0; i < bv.size(); ++i) CHECK(bv[i] == (i < 30 ? 2.5f : -1.f));
}

TEST_CASE("upsample_bilinear2d: rows wider than the kernels' chunk of column taps (1024) come out whole") {
    // 1x2 -> 2x1500 with align_corners: output column o is x0 + (x1 - x0) * o / 1499 on both rows; dy = 1 gives
    // dx0 = 2 * sum_o (1 - o/1499) = 1500 and the same for dx1 (2 rows, each weight pair sums to 1).
    Tensor x = from_vector({1.f, 4.f}, {1, 1, 1, 2}).requires_grad_();
    Tensor y = upsample_bilinear2d(x, Size2(2, 1500), true);
    std::vector<float> yv = y.to_vector();
    for (int64_t row = 0; row < 2; ++row)
        for (int64_t o = 0; o < 1500; ++o)
            REQUIRE(yv[size_t(row * 1500 + o)] == doctest::Approx(1.0 + 3.0 * double(o) / 1499.0).epsilon(1e-5));
    y.backward(ones({1, 1, 2, 1500}));
    check_close(x.grad(), from_vector({1500.f, 1500.f}, {1, 1, 1, 2}), 1e-4, 1e-4, "backward");
}

TEST_CASE("upsample_bilinear2d: errors") {
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(zeros({3, 4, 5}), Size2(2, 2), true),
                         doctest::Contains("upsample_bilinear2d: input must be 4-D (N,C,H,W), got shape [3, 4, 5]"),
                         Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(zeros({1, 1, 2, 2}, DType::I32), Size2(2, 2), true),
                         doctest::Contains("upsample_bilinear2d: input must be F32, got I32"), Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(zeros({1, 1, 2, 2}), Size2(0, 3), true),
                         doctest::Contains("output_size must be positive, got (0, 3)"), Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d(zeros({1, 1, 0, 2}), Size2(2, 3), true),
                         doctest::Contains("input must have H, W > 0"), Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d_scale(zeros({1, 1, 2, 2}), -2.0, 2.0, true),
                         doctest::Contains("scale_factor must be positive"), Error);
    CHECK_THROWS_WITH_AS(upsample_bilinear2d_scale(zeros({1, 1, 3, 3}), 0.2, 0.2, false),
                         doctest::Contains("makes the output of input [1, 1, 3, 3] empty"), Error);
}

TEST_CASE("upsample_bilinear2d: module from the registry") {
    Tensor x = randn({2, 3, 4, 5});

    auto by_size = create_layer("upsample_bilinear2d", {{"size", {6, 7}}, {"align_corners", true}});
    CHECK(by_size->type_name() == "UpsampleBilinear2d");
    CHECK(by_size->named_parameters().empty());
    CHECK(by_size->named_buffers().empty());
    check_close(by_size->forward(x), upsample_bilinear2d(x, Size2(6, 7), true), 0, 0, "size [6, 7]");

    auto square = create_layer("upsample_bilinear2d", {{"size", 9}});  // align_corners defaults to false
    check_close(square->forward(x), upsample_bilinear2d(x, Size2(9, 9), false), 0, 0, "size 9");

    auto by_scale = create_layer("upsample_bilinear2d", {{"scale_factor", 1.5}});
    Tensor y = by_scale->forward(x);
    CHECK(y.shape() == Shape{2, 3, 6, 7});  // floor(4 * 1.5), floor(5 * 1.5)
    check_close(y, upsample_bilinear2d_scale(x, 1.5, 1.5, false), 0, 0, "scale_factor 1.5");
    auto by_scales = create_layer("upsample_bilinear2d", {{"scale_factor", {2, 0.5}}, {"align_corners", true}});
    CHECK(by_scales->forward(x).shape() == Shape{2, 3, 8, 2});

    UpsampleBilinear2d direct(Size2(60), true);
    CHECK(direct.forward(randn({1, 2, 6, 6})).shape() == Shape{1, 2, 60, 60});

    CHECK_THROWS_WITH_AS(create_layer("upsample_bilinear2d", {{"size", 4}, {"scale_factor", 2}}),
                         doctest::Contains("exactly one of the attributes 'size' and 'scale_factor', got both"),
                         Error);
    CHECK_THROWS_WITH_AS(create_layer("upsample_bilinear2d", {{"align_corners", true}}),
                         doctest::Contains("got neither"), Error);
    CHECK_THROWS_WITH_AS(create_layer("upsample_bilinear2d", {{"scale_factor", "2"}}),
                         doctest::Contains("'scale_factor' must be a number or [h, w]"), Error);
    CHECK_THROWS_WITH_AS(create_layer("upsample_bilinear2d", {{"size", 4}, {"mode", "bilinear"}}),
                         doctest::Contains("unknown attribute 'mode'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("upsample_bilinear2d", {{"size", 0}}),
                         doctest::Contains("size must be positive"), Error);
}
