// maxpool2d: hand-computed cases (ties, shared argmax, NaN), output sizes, the PyTorch fixture, errors,
// the module and its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/random.h"
#include "framework/registry.h"
#include "layers/maxpool2d.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

namespace {

// This file's own random stream: its tests leave the default generator, which other test files draw from,
// alone.
Generator& test_gen() {
    static Generator gen(101);
    return gen;
}


// 4x4 input with a tie in the bottom-right 2x2 block (three 3's).
Tensor hand_input() {
    return from_vector({1, 2, 5, 3,   //
                        4, 0, 1, 7,   //
                        2, 9, 3, 3,   //
                        6, 1, 3, 2},
                       {1, 1, 4, 4});
}

MaxPool2dOptions options_from(const nlohmann::json& p) {
    MaxPool2dOptions o;
    o.kernel_size = Size2(p["kernel_size"][0].get<int64_t>(), p["kernel_size"][1].get<int64_t>());
    if (!p["stride"].is_null()) o.stride = Size2(p["stride"][0].get<int64_t>(), p["stride"][1].get<int64_t>());
    o.padding = Size2(p["padding"][0].get<int64_t>(), p["padding"][1].get<int64_t>());
    o.ceil_mode = p["ceil_mode"].get<bool>();
    return o;
}

}  // namespace

TEST_CASE("maxpool2d: hand-computed 2x2 stride 2, ties go to the first maximum") {
    Tensor x = hand_input().requires_grad_();
    Tensor y = maxpool2d(x, {.kernel_size = 2});  // stride defaults to the kernel size
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    CHECK(y.to_vector() == std::vector<float>{4, 7, 9, 3});
    y.backward(from_vector({1, 2, 3, 4}, {1, 1, 2, 2}));
    // the bottom-right window holds three 3's: the first in scan order, (2, 2), gets the gradient
    CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 0, 0,  //
                                                     1, 0, 0, 2,  //
                                                     0, 3, 4, 0,  //
                                                     0, 0, 0, 0});
}

TEST_CASE("maxpool2d: hand-computed 3x3 stride 2 padding 1 (PSPNet), two outputs share an argmax") {
    Tensor x = hand_input().requires_grad_();
    Tensor y = maxpool2d(x, {.kernel_size = 3, .stride = 2, .padding = 1});
    // out = floor((4 + 2 - 3) / 2) + 1 = 2; windows are rows/columns [-1, 1] and [1, 3], clipped to the input
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    CHECK(y.to_vector() == std::vector<float>{4, 7, 9, 9});
    y.backward(from_vector({1, 2, 3, 4}, {1, 1, 2, 2}));
    // the 9 at (2, 1) wins both bottom windows: its gradient is 3 + 4
    CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 0, 0,  //
                                                     1, 0, 0, 2,  //
                                                     0, 7, 0, 0,  //
                                                     0, 0, 0, 0});
}

TEST_CASE("maxpool2d: NaN propagates and takes the gradient, as in PyTorch") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    Tensor x = from_vector({1, nan, 2, nan, 0, 5}, {1, 1, 2, 3}).requires_grad_();
    Tensor y = maxpool2d(x, {.kernel_size = {2, 3}});
    CHECK(std::isnan(y.item()));
    y.backward(from_vector({1}, {1, 1, 1, 1}));
    // PyTorch's CPU kernel reports the last NaN of the window (index 3)
    CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 0, 1, 0, 0});
}

TEST_CASE("maxpool2d: output sizes as PyTorch computes them") {
    auto out_shape = [](int64_t h, int64_t w, const MaxPool2dOptions& o) {
        return maxpool2d(zeros({1, 1, h, w}), o).shape();
    };
    // PSPNet's stem pool: 237 -> 119 and 357 -> 179
    CHECK(out_shape(237, 357, {.kernel_size = 3, .stride = 2, .padding = 1}) == Shape{1, 1, 119, 179});
    // ceil_mode rounds up: 12 -> 7 instead of 6
    CHECK(out_shape(12, 12, {.kernel_size = 3, .stride = 2, .padding = 1}) == Shape{1, 1, 6, 6});
    CHECK(out_shape(12, 12, {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}) == Shape{1, 1, 7, 7});
    // ... but a last window that would start in the right padding is dropped: 5 -> 3, not 4
    CHECK(out_shape(5, 5, {.kernel_size = 2, .stride = 2, .padding = 1, .ceil_mode = true}) == Shape{1, 1, 3, 3});
    // a kernel larger than the input is fine in ceil_mode as long as one window fits the rule
    CHECK(out_shape(2, 2, {.kernel_size = 3, .ceil_mode = true}) == Shape{1, 1, 1, 1});
    // an empty batch is allowed, as in PyTorch
    CHECK(maxpool2d(zeros({0, 3, 4, 4}), {.kernel_size = 2}).shape() == Shape{0, 3, 2, 2});
}

TEST_CASE("maxpool2d: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("maxpool2d");
    for (const std::string& c : fixture_cases(fx)) {
        MaxPool2dOptions o = options_from(fixture_params(fx, c));
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor y = maxpool2d(x, o);
        check_close(y, fx.get(c + ".y"), 0, 0, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-6, 1e-6, c + " backward");
    }
}

TEST_CASE("maxpool2d: the vectorised forward against a window-by-window scan, with ties, NaN and -inf, odd sizes") {
    // small integers make ties common; a few NaN and -inf; the reference scans each window in order with PyTorch's
    // rule (v > best || isnan(v)), and the gradient (dy = 1, 2, 3, ... per output) shows which element won.
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const MaxPool2dOptions cases[] = {{.kernel_size = 3, .stride = 2, .padding = 1},
                                      {.kernel_size = Size2(2, 3), .stride = Size2(1, 2), .padding = 1,
                                       .ceil_mode = true},
                                      {.kernel_size = 3, .stride = 1, .padding = 1},
                                      {.kernel_size = Size2(3, 2), .stride = 3, .ceil_mode = true}};
    const int64_t planes = 3, H = 13, W = 11;
    std::vector<float> xv(size_t(planes * H * W));
    for (size_t i = 0; i < xv.size(); ++i) {
        const uint64_t r = random_u64(5, i) % 40;
        xv[i] = r == 0 ? nan : r == 1 ? -inf : float(r % 5);
    }
    for (const MaxPool2dOptions& o : cases) {
        CAPTURE(o.kernel_size.h);
        CAPTURE(o.stride.w);
        Tensor x = from_vector(xv, {1, planes, H, W}).requires_grad_();
        Tensor y = maxpool2d(x, o);
        const int64_t P = y.size(2), Q = y.size(3);
        std::vector<float> dy(size_t(planes * P * Q));
        for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(i + 1);
        y.backward(from_vector(dy, y.shape()));
        const std::vector<float> yv = y.to_vector(), dx = x.grad().to_vector();
        std::vector<float> want_dx(xv.size(), 0.0f);
        for (int64_t c = 0; c < planes; ++c)
            for (int64_t oh = 0; oh < P; ++oh)
                for (int64_t ow = 0; ow < Q; ++ow) {
                    const int64_t h0 = oh * o.stride.h - o.padding.h, w0 = ow * o.stride.w - o.padding.w;
                    float best = -inf;
                    int64_t at = std::max<int64_t>(h0, 0) * W + std::max<int64_t>(w0, 0);
                    for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + o.kernel_size.h, H); ++h)
                        for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + o.kernel_size.w, W); ++w) {
                            const float v = xv[size_t((c * H + h) * W + w)];
                            if (v > best || std::isnan(v)) best = v, at = h * W + w;
                        }
                    const size_t out = size_t((c * P + oh) * Q + ow);
                    if (std::isnan(best))
                        REQUIRE(std::isnan(yv[out]));
                    else
                        REQUIRE(yv[out] == best);
                    want_dx[size_t(c * H * W + at)] += dy[out];
                }
        CHECK(dx == want_dx);
    }
}

TEST_CASE("maxpool2d: errors") {
    Tensor x = zeros({1, 2, 5, 5});
    CHECK_THROWS_WITH_AS(maxpool2d(zeros({2, 5, 5}), {.kernel_size = 2}),
                         doctest::Contains("maxpool2d: input must be 4-D (N,C,H,W), got shape [2, 5, 5]"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(zeros({1, 2, 5, 5}, DType::I32), {.kernel_size = 2}),
                         doctest::Contains("maxpool2d: input must be F32, got I32"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(zeros({1, 0, 5, 5}), {.kernel_size = 2}),
                         doctest::Contains("maxpool2d: input must have non-zero C, H and W"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {}), doctest::Contains("maxpool2d: kernel_size must be positive, got (0, 0)"),
                         Error);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {.kernel_size = 2, .stride = {1, 0}}),
                         doctest::Contains("maxpool2d: stride must be positive (or (0, 0) for kernel_size), got "
                                           "(1, 0)"),
                         Error);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {.kernel_size = 2, .padding = -1}),
                         doctest::Contains("maxpool2d: padding must be non-negative"), Error);
    CHECK_THROWS_WITH_AS(maxpool2d(x, {.kernel_size = 3, .padding = 2}),
                         doctest::Contains("maxpool2d: padding should be at most half of kernel_size, got padding "
                                           "(2, 2) and kernel_size (3, 3)"),
                         Error);
    CHECK_THROWS_WITH_AS(maxpool2d(zeros({1, 1, 2, 7}), {.kernel_size = 3}),
                         doctest::Contains("maxpool2d: input of size 2x7 is too small for kernel_size (3, 3)"), Error);
}

TEST_CASE("maxpool2d: module from the registry") {
    Tensor x = randn({2, 3, 9, 9}, test_gen());
    auto m = create_layer("maxpool2d", {{"kernel_size", 3}, {"stride", 2}, {"padding", 1}});
    CHECK(m->type_name() == "MaxPool2d");
    CHECK(m->named_parameters().empty());
    CHECK(m->named_buffers().empty());
    check_close(m->forward(x), maxpool2d(x, {.kernel_size = 3, .stride = 2, .padding = 1}), 0, 0, "registry");

    // stride defaults to the kernel size; sizes may be [h, w]
    auto d = create_layer("maxpool2d", {{"kernel_size", {2, 3}}, {"ceil_mode", true}});
    CHECK(d->forward(x).shape() == Shape{2, 3, 5, 3});
    MaxPool2d direct(3, 2, 1);
    check_close(direct(x), m->forward(x), 0, 0, "constructor");

    CHECK_THROWS_WITH_AS(create_layer("maxpool2d", {{"kernel_size", 2}, {"dilation", 2}}),
                         doctest::Contains("unknown attribute 'dilation'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("maxpool2d", {{"stride", 2}}),
                         doctest::Contains("maxpool2d: missing required attribute 'kernel_size'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("maxpool2d", {{"kernel_size", 3}, {"padding", 2}}),
                         doctest::Contains("MaxPool2d: padding should be at most half of kernel_size"), Error);
}
