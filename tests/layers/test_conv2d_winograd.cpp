// conv2d's Winograd F(4x4, 3x3) path (layers/conv2d_winograd.cpp): the forward and the input gradient against the
// implicit-GEMM path at odd shapes (sizes not multiples of the 4x4 tile, 1x1 maps, batch 1, channel counts that
// are not multiples of anything, padding 0, 1 and d, dilations 1, 2 and 4, several chunks of tiles and of
// channels), the same bits on 1 and 3 threads, the PyTorch fixtures, and when auto chooses it. Its finite-difference
// gradient checks run from conv2d's Winograd entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
//
// Tolerance. Both paths compute the same exact sum; the GEMM path is within (C*9 + 2) * FLT_EPSILON * S of it, with
// S = sum |x w| over the output's terms (cuda/tests/gemm_parity.h). Winograd computes each 4x4 output tile as
// Aᵀ [sum_c (G g Gᵀ) ⊙ (Bᵀ d B)] A: a float sum over the C channels of the 36 transformed products, between
// transforms whose entries reach 8 (Aᵀ) and 5 (Bᵀ). Replacing every entry of the transforms, filter and tile by
// its absolute value bounds the magnitude of every intermediate; for g and d all ones that bound, divided by the
// direct sum (9), is at most 256 (for the tile's corner output, Aᵀ's row (0 1 -1 8 -8 1) twice). So Winograd is
// within (C + 16) * FLT_EPSILON * 256 * S of the exact value (C terms per GEMM element, a few roundings per
// transform). A wrong tap, phase or tile changes an element by a whole term, far beyond that.
#include <doctest/doctest.h>

#include <cfloat>
#include <vector>

#include "cuda/tests/gemm_parity.h"
#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/random.h"
#include "layers/conv2d.h"
#include "layers/conv2d_winograd.h"
#include "tests/fixtures.h"
#include "tests/thread_scope.h"

using namespace strata;
using namespace strata::testing;

namespace {

struct Outputs {
    std::vector<float> y, dx, dw, db;
};

Outputs run(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy, const Conv2dOptions& o,
            Conv2dAlgo algo) {
    Conv2dAlgoScope scope(algo);
    NoGradGuard no_grad;
    Conv2dGrads g = conv2d_grads(dy, x, w, o, true, true, true);
    return {conv2d(x, w, b, o).to_vector(), g.dx.to_vector(), g.dweight.to_vector(), g.dbias.to_vector()};
}

// Winograd's bound (above) plus the GEMM path's, per element, from the sums of absolute terms S.
std::vector<double> tolerance(const Tensor& sum_abs, int64_t channels) {
    std::vector<double> tol = sum_tolerance(sum_abs, 256 * (channels + 16));
    std::vector<double> gemm = sum_tolerance(sum_abs, 9 * channels + 2);
    for (size_t i = 0; i < tol.size(); ++i) tol[i] += gemm[i];
    return tol;
}

}  // namespace

TEST_CASE("conv2d winograd: forward and input gradient match implicit GEMM at odd shapes, on 1 and 3 threads") {
    struct Case {
        const char* name;
        Shape x, w;
        Conv2dOptions o;
    };
    const Case cases[] = {
        {"pad 1, batch 1, 5x7 (partial tiles)", {1, 3, 5, 7}, {2, 3, 3, 3}, {.padding = 1}},
        {"pad 0, 11x13, 17 -> 19 channels", {2, 17, 11, 13}, {19, 17, 3, 3}, {}},
        {"a 1x1 map, pad 1", {1, 5, 1, 1}, {4, 5, 3, 3}, {.padding = 1}},
        {"3x3 map, pad 0: a 1x1 output", {3, 2, 3, 3}, {3, 2, 3, 3}, {}},
        {"dilation 2 pad 2, 15x14", {2, 33, 15, 14}, {13, 33, 3, 3}, {.padding = 2, .dilation = 2}},
        {"dilation 4 pad 4, 20x21", {1, 5, 20, 21}, {33, 5, 3, 3}, {.padding = 4, .dilation = 4}},
        {"dilation 4 pad 1 (dx pads 7), 13x10", {1, 4, 13, 10}, {3, 4, 3, 3}, {.padding = 1, .dilation = 4}},
        {"dilation (2,1), pad (0,1), 9x8", {2, 3, 9, 8}, {5, 3, 3, 3}, {.padding = Size2(0, 1), .dilation = Size2(2, 1)}},
        {"pad 3 > 2*dilation: dx crops", {1, 2, 6, 5}, {3, 2, 3, 3}, {.padding = 3}},
        {"2 chunks of 512 tiles or fewer", {2, 3, 64, 70}, {5, 3, 3, 3}, {.padding = 1}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        Tensor x = randn(c.x), w = randn(c.w), b = randn({c.w[0]});
        Conv2dShape s = conv2d_shape(c.x, c.w, c.o);
        Tensor dy = randn({s.N, s.K, s.P, s.Q});
        const Outputs want = run(x, w, b, dy, c.o, Conv2dAlgo::kGemm);
        NoGradGuard no_grad;
        Conv2dAlgoScope gemm(Conv2dAlgo::kGemm);
        Tensor y_abs = conv2d(abs_of(x), abs_of(w), abs_of(b), c.o);
        Tensor dx_abs = conv2d_grads(abs_of(dy), x, abs_of(w), c.o, true, false, false).dx;
        Conv2dAlgoScope restore(Conv2dAlgo::kAuto);
        Outputs first;
        for (int threads : {1, 3}) {
            CAPTURE(threads);
            ThreadCountScope scope(threads);
            const Outputs got = run(x, w, b, dy, c.o, Conv2dAlgo::kWinograd);
            CHECK(difference_beyond(got.y, want.y, tolerance(y_abs, s.C)) == "");
            CHECK(difference_beyond(got.dx, want.dx, tolerance(dx_abs, s.K)) == "");
            CHECK(got.dw == want.dw);  // the weight gradient stays on implicit GEMM
            CHECK(got.db == want.db);
            if (threads == 1) first = got;
            CHECK(got.y == first.y);  // the 36 GEMMs and the transforms do not depend on the thread count
            CHECK(got.dx == first.dx);
        }
    }
}

TEST_CASE("conv2d winograd: chunks of tiles, output channels and input channels give the same result") {
    // 50 tiles, 40 input and 35 output channels, a budget of 16 x 48 floats per point: 2 chunks of tiles (32 + 18),
    // of input channels (20 + 20 forward, 18 + 17 in dx) and of output channels (18 + 17 forward, 20 + 20 in dx)
    const Shape xs{2, 40, 19, 17}, ws{35, 40, 3, 3};
    const Conv2dOptions o{.padding = 1};
    Tensor x = randn(xs), w = randn(ws), b = randn({35});
    Conv2dShape s = conv2d_shape(xs, ws, o);
    Tensor dy = randn({s.N, s.K, s.P, s.Q});
    const Outputs want = run(x, w, b, dy, o, Conv2dAlgo::kGemm);
    NoGradGuard no_grad;
    Conv2dAlgoScope gemm(Conv2dAlgo::kGemm);
    const std::vector<double> y_tol = tolerance(conv2d(abs_of(x), abs_of(w), abs_of(b), o), s.C);
    const std::vector<double> dx_tol = tolerance(conv2d_grads(abs_of(dy), x, abs_of(w), o, true, false, false).dx, s.K);
    for (bool backward : {false, true}) {
        CAPTURE(backward);
        WinogradShape g = backward ? winograd_dx_shape(s) : winograd_forward_shape(s);
        g.chunk_floats = 36 * 16 * 48;
        std::vector<float> out(size_t(backward ? x.numel() : dy.numel())), scratch(size_t(winograd_scratch_floats(g)));
        winograd_conv3x3_cpu(out.data(), backward ? dy.f32() : x.f32(), w.f32(), backward ? nullptr : b.f32(),
                             scratch.data(), g);
        CHECK(difference_beyond(out, backward ? want.dx : want.y, backward ? dx_tol : y_tol) == "");
        CHECK(scratch.size() < size_t(3 * g.chunk_floats));
    }
}

TEST_CASE("conv2d winograd: the PyTorch fixtures and autograd with Winograd forced on") {
    Conv2dAlgoScope scope(Conv2dAlgo::kWinograd);
    SafetensorsFile fx = load_fixture("conv2d");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json params = fixture_params(fx, c);
        auto size2 = [](const nlohmann::json& v) { return Size2(v.at(0).get<int64_t>(), v.at(1).get<int64_t>()); };
        Conv2dOptions o{size2(params["stride"]), size2(params["padding"]), size2(params["dilation"])};
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor w = fx.get(c + ".weight").clone().requires_grad_();
        Tensor b = params["bias"].get<bool>() ? fx.get(c + ".bias").clone().requires_grad_() : Tensor();
        Tensor y = conv2d(x, w, b, o);
        y.backward(fx.get(c + ".dy"));
        // the fixtures' small sums (C*R*S <= 27 terms): Winograd stays within 1e-4 of PyTorch's direct result
        check_close(y, fx.get(c + ".y"), 1e-4, 1e-4, c + " forward");
        check_close(x.grad(), fx.get(c + ".dx"), 1e-4, 1e-4, c + " dx");
        check_close(w.grad(), fx.get(c + ".dweight"), 1e-4, 1e-5, c + " dweight");
    }
}

TEST_CASE("conv2d winograd: the backward uses the algorithm of the forward") {
    Tensor x = randn({1, 3, 6, 7}).requires_grad_(), w = randn({2, 3, 3, 3});
    Tensor dy = randn({1, 2, 6, 7});
    Tensor y;
    {
        Conv2dAlgoScope scope(Conv2dAlgo::kWinograd);
        y = conv2d(x, w, Tensor(), {.padding = 1});
    }
    y.backward(dy);  // outside the scope: still Winograd's dx
    NoGradGuard no_grad;
    Conv2dAlgoScope scope(Conv2dAlgo::kWinograd);
    CHECK(x.grad().to_vector() == conv2d_grads(dy, x.detach(), w, {.padding = 1}, true, false, false).dx.to_vector());
}

TEST_CASE("conv2d winograd: where auto chooses it") {
    auto chosen = [](Shape x, Shape w, Conv2dOptions o) {
        Conv2dShape s = conv2d_shape(x, w, o);
        s.implicit_gemm = conv2d_use_implicit_gemm(Device{});
        return conv2d_use_winograd(s);
    };
    const bool implicit = conv2d_use_implicit_gemm(Device{});
    Conv2dAlgoScope scope(Conv2dAlgo::kAuto);
    // PSPNet-50's classifier, and layer4's dilated 3x3 at 60x60
    CHECK(chosen({2, 4096, 60, 60}, {512, 4096, 3, 3}, {.padding = 1}) == implicit);
    CHECK(chosen({2, 512, 60, 60}, {512, 512, 3, 3}, {.padding = 4, .dilation = 4}) == implicit);
    CHECK_FALSE(chosen({2, 128, 119, 119}, {128, 128, 3, 3}, {.stride = 2, .padding = 1}));  // stride 2
    CHECK_FALSE(chosen({2, 256, 60, 60}, {512, 256, 1, 1}, {}));                              // 1x1
    CHECK_FALSE(chosen({2, 3, 60, 60}, {64, 3, 3, 3}, {.padding = 1}));                       // 3 input channels
    CHECK_FALSE(chosen({2, 256, 60, 60}, {256, 256, 3, 3}, {.padding = 2, .dilation = 2}));  // 256 x 256: too few
    CHECK_FALSE(chosen({8, 512, 2, 2}, {512, 512, 3, 3}, {.padding = 1}));  // 2x2 maps: a quarter of each tile
    {
        Conv2dAlgoScope off(Conv2dAlgo::kGemm);
        CHECK_FALSE(chosen({2, 4096, 60, 60}, {512, 4096, 3, 3}, {.padding = 1}));
    }
    {
        ReproducibleGemmScope reproducible(true);  // fixed-order GEMM: no implicit GEMM, no Winograd
        CHECK_FALSE(chosen({2, 4096, 60, 60}, {512, 4096, 3, 3}, {.padding = 1}));
    }
    CHECK(parse_conv2d_algo("winograd") == Conv2dAlgo::kWinograd);
    CHECK_THROWS_WITH_AS(parse_conv2d_algo("fft"), doctest::Contains("the choices are auto"), Error);
}
