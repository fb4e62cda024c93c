// conv2d: a hand-computed case, the PyTorch fixture, batching paths, errors, the module and its registry entry.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <cmath>

#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/registry.h"
#include "layers/conv2d.h"
#include "tests/fixtures.h"
#include "tests/thread_scope.h"

using namespace strata;
using namespace strata::testing;

namespace {

Size2 size2_from(const nlohmann::json& v) { return Size2(v.at(0).get<int64_t>(), v.at(1).get<int64_t>()); }

}  // namespace

TEST_CASE("conv2d: hand-computed values and gradients") {
    // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0],[0,-1]], b = 0.5: every output is x[p][q] - x[p+1][q+1] + 0.5 = -3.5
    Tensor x = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}).requires_grad_();
    Tensor w = from_vector({1, 0, 0, -1}, {1, 1, 2, 2}).requires_grad_();
    Tensor b = from_vector({0.5f}, {1}).requires_grad_();
    Tensor y = conv2d(x, w, b);
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    CHECK(y.to_vector() == std::vector<float>{-3.5f, -3.5f, -3.5f, -3.5f});
    y.backward(ones({1, 1, 2, 2}));
    // dw[r][s] = sum of the 2x2 window of x at offset (r, s); db = number of outputs
    CHECK(w.grad().to_vector() == std::vector<float>{12, 16, 24, 28});
    CHECK(b.grad().to_vector() == std::vector<float>{4});
    // dx: +1 where w[0][0] touched x, -1 where w[1][1] did; both at the centre
    CHECK(x.grad().to_vector() == std::vector<float>{1, 1, 0, 1, 0, -1, 0, -1, -1});
}

TEST_CASE("conv2d: hand-computed stride, padding and dilation") {
    // x 1x1x4x4 = 0..15, a 2x2 kernel of ones with dilation 2, padding 1, stride 2: output (4 + 2 - 3)/2 + 1 = 2.
    // Output (p, q) sums x at rows {2p-1, 2p+1} and columns {2q-1, 2q+1}, the out-of-range ones being padding.
    Tensor x = arange(16).reshape({1, 1, 4, 4});
    Tensor w = ones({1, 1, 2, 2});
    Tensor y = conv2d(x, w, Tensor(), {.stride = 2, .padding = 1, .dilation = 2});
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    // (0,0): x[1][1] = 5; (0,1): x[1][1] + x[1][3] = 5 + 7; (1,0): x[1][1] + x[3][1] = 5 + 13; (1,1): 5+7+13+15
    CHECK(y.to_vector() == std::vector<float>{5, 12, 18, 40});
}

TEST_CASE("conv2d: matches PyTorch forward and backward") {
    SafetensorsFile fx = load_fixture("conv2d");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json params = fixture_params(fx, c);
        Conv2dOptions o{size2_from(params["stride"]), size2_from(params["padding"]), size2_from(params["dilation"])};
        bool has_bias = params["bias"].get<bool>();
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor w = fx.get(c + ".weight").clone().requires_grad_();
        Tensor b = has_bias ? fx.get(c + ".bias").clone().requires_grad_() : Tensor();
        Tensor y = conv2d(x, w, b, o);
        check_close(y, fx.get(c + ".y"), 1e-5, 1e-5, c + " forward");
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-5, 1e-5, c + " dx");
        check_close(w.grad(), fx.get(c + ".dweight"), 1e-4, 1e-5, c + " dweight");
        if (has_bias) check_close(b.grad(), fx.get(c + ".dbias"), 1e-4, 1e-5, c + " dbias");
    }
}

// A batch is computed in groups of images per GEMM (several images when the maps are small, one image otherwise,
// a 1x1 stride-1 conv of one image without im2col). Whatever the grouping, the result must equal the convolution
// of each image on its own (N = 1 always takes one image per GEMM), and dweight/dbias the sum over the images.
TEST_CASE("conv2d: a batch equals its images one by one") {
    struct Case {
        const char* name;
        Shape x, w;
        Conv2dOptions o;
    };
    Case cases[] = {
        {"3x3 pad 1, 33x33 maps: one image per GEMM", {3, 2, 33, 33}, {3, 2, 3, 3}, {.padding = 1}},
        {"1x1, 25x25 maps: groups of 2 then a single image without im2col", {3, 3, 25, 25}, {2, 3, 1, 1}, {}},
        {"1x1 stride 1, 40x40 maps: no im2col at all", {2, 3, 40, 40}, {4, 3, 1, 1}, {}},
        {"3x3 dilation 2, 6x6 maps: all 5 images in one GEMM",
         {5, 2, 6, 6},
         {3, 2, 3, 3},
         {.padding = 2, .dilation = 2}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        Tensor x = randn(c.x).requires_grad_();
        Tensor w = randn(c.w).requires_grad_();
        Tensor b = randn({c.w[0]}).requires_grad_();
        Tensor y = conv2d(x, w, b, c.o);
        Tensor dy = randn(y.shape());
        y.backward(dy);

        // sum the per-image weight and bias gradients on the host
        std::vector<float> dw_sum(size_t(w.numel()), 0.f), db_sum(size_t(b.numel()), 0.f);
        for (int64_t n = 0; n < c.x[0]; ++n) {
            Tensor xn = x.detach().narrow(0, n, 1).clone().requires_grad_();
            Tensor wn = w.detach().clone().requires_grad_();
            Tensor bn = b.detach().clone().requires_grad_();
            Tensor yn = conv2d(xn, wn, bn, c.o);
            yn.backward(dy.narrow(0, n, 1).contiguous());
            check_close(y.narrow(0, n, 1), yn, 1e-5, 1e-5, std::string(c.name) + " forward");
            check_close(x.grad().narrow(0, n, 1), xn.grad(), 1e-5, 1e-5, std::string(c.name) + " dx");
            std::vector<float> dwn = wn.grad().to_vector(), dbn = bn.grad().to_vector();
            for (size_t i = 0; i < dw_sum.size(); ++i) dw_sum[i] += dwn[i];
            for (size_t i = 0; i < db_sum.size(); ++i) db_sum[i] += dbn[i];
        }
        check_close(w.grad(), from_vector(dw_sum, c.w), 1e-3, 1e-4, std::string(c.name) + " dweight");
        check_close(b.grad(), from_vector(db_sum, {c.w[0]}), 1e-3, 1e-4, std::string(c.name) + " dbias");
    }
}

TEST_CASE("conv2d: only the requested gradients are computed") {
    Tensor x = randn({2, 3, 5, 5});
    Tensor w = randn({4, 3, 3, 3});
    Tensor b = randn({4});
    Conv2dGrads g = conv2d_grads(randn({2, 4, 3, 3}), x, w, {}, false, true, false);
    CHECK(!g.dx.defined());
    CHECK(g.dweight.defined());
    CHECK(!g.dbias.defined());
    // through autograd: only x requires grad, so the weight and bias get nothing
    Tensor xr = x.clone().requires_grad_();
    conv2d(xr, w, b).backward(ones({2, 4, 3, 3}));
    CHECK(xr.grad().defined());
    CHECK(!w.grad().defined());
    CHECK(!b.grad().defined());
}

TEST_CASE("conv2d: errors") {
    Tensor x = zeros({2, 3, 8, 8});
    Tensor w = zeros({4, 3, 3, 3});
    CHECK_THROWS_WITH_AS(conv2d(zeros({3, 8, 8}), w),
                         doctest::Contains("conv2d: input must be 4-D (N,C,H,W), got shape [3, 8, 8]"), Error);
    CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3})),
                         doctest::Contains("conv2d: weight must be 4-D (K,C,R,S), got shape [4, 3, 3]"), Error);
    CHECK_THROWS_WITH_AS(
        conv2d(x, zeros({4, 5, 3, 3})),
        doctest::Contains("conv2d: input has 3 channels but weight expects 5 (input shape [2, 3, 8, 8], "
                          "weight shape (K,C,R,S) [4, 5, 3, 3])"),
        Error);
    CHECK_THROWS_WITH_AS(conv2d(x, w, zeros({3})),
                         doctest::Contains("conv2d: bias must have shape [4] (the K of weight [4, 3, 3, 3]), got [3]"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 5, 5}), Tensor(), {.dilation = 2}),
                         doctest::Contains("conv2d: output height would be <= 0: input height 8 + 2*padding 0 = 8 is "
                                           "smaller than the dilated kernel height 9 (kernel 5, dilation 2)"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(zeros({1, 3, 8, 2}), w), doctest::Contains("conv2d: output width would be <= 0"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {.stride = 0}), doctest::Contains("conv2d: stride must be >= 1"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {.padding = -1}), doctest::Contains("conv2d: padding must be >= 0"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {.dilation = {1, 0}}),
                         doctest::Contains("conv2d: dilation must be >= 1"), Error);
    CHECK_THROWS_WITH_AS(conv2d(zeros({2, 3, 8, 8}, DType::I32), w), doctest::Contains("conv2d: input must be F32"),
                         Error);
}

TEST_CASE("conv2d: module from the registry") {
    auto m = create_layer("conv2d", {{"in_channels", 4},
                                     {"out_channels", 6},
                                     {"kernel_size", {3, 1}},
                                     {"stride", 2},
                                     {"padding", {1, 0}},
                                     {"dilation", 1},
                                     {"bias", true}});
    CHECK(m->type_name() == "Conv2d");
    NamedTensors params = m->named_parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "weight");
    CHECK(params[0].second.shape() == Shape{6, 4, 3, 1});
    CHECK(params[1].first == "bias");
    CHECK(params[1].second.shape() == Shape{6});
    // PyTorch's init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 4*3*1 = 12
    float bound = 1.0f / std::sqrt(12.0f);
    for (const auto& [name, t] : params)
        for (float v : t.to_vector()) CHECK(std::abs(v) <= bound);
    Tensor y = m->forward(randn({2, 4, 7, 5}));
    CHECK(y.shape() == Shape{2, 6, 4, 3});  // P = (7 + 2*1 - 3)/2 + 1 = 4, Q = (5 + 0 - 1)/2 + 1 = 3
}

TEST_CASE("conv2d: module without bias, and bad attributes") {
    auto m = create_layer("conv2d", {{"in_channels", 2}, {"out_channels", 3}, {"kernel_size", 1}, {"bias", false}});
    NamedTensors params = m->named_parameters();
    REQUIRE(params.size() == 1);
    CHECK(params[0].first == "weight");
    CHECK(params[0].second.shape() == Shape{3, 2, 1, 1});
    CHECK_THROWS_WITH_AS(
        create_layer("conv2d", {{"in_channels", 2}, {"out_channels", 3}, {"kernel_size", 3}, {"strides", 2}}),
        doctest::Contains("unknown attribute 'strides'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("conv2d", {{"in_channels", 2}, {"out_channels", 3}}),
                         doctest::Contains("conv2d: missing required attribute 'kernel_size'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("conv2d", {{"in_channels", 2}, {"out_channels", 0}, {"kernel_size", 3}}),
                         doctest::Contains("Conv2d: in_channels and out_channels must be positive"), Error);
}

namespace {

// conv2d's output and all three gradients for fixed inputs, on whichever CPU path is switched on.
struct ConvResult {
    std::vector<float> y, dx, dw, db;
};

ConvResult run_conv(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& dy, const Conv2dOptions& o) {
    Tensor x = x0.detach().clone().requires_grad_(), w = w0.detach().clone().requires_grad_();
    Tensor b = b0.detach().clone().requires_grad_();
    Tensor y = conv2d(x, w, b, o);
    y.backward(dy);
    return {y.to_vector(), x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector()};
}

struct ImplicitGemmScope {
    explicit ImplicitGemmScope(bool on) { set_conv2d_implicit_gemm(on); }
    ~ImplicitGemmScope() { set_conv2d_implicit_gemm(true); }
};

}  // namespace

// The implicit-GEMM path packs the same panels from x that the im2col path packs from col, and chunks dx's GEMM by
// rows, which leaves each element's summation order as it was: both paths must give the same bits, at shapes that
// are not multiples of the tiles (12x32, 6x16, 4x16) nor of KC = 256, and with more than one dx chunk.
TEST_CASE("conv2d: implicit GEMM gives the im2col path's bits, on 1 and 3 threads") {
    struct Case {
        const char* name;
        Shape x, w;
        Conv2dOptions o;
    };
    Case cases[] = {
        {"3x3 pad 1, batch 1, 11x13", {1, 3, 11, 13}, {5, 3, 3, 3}, {.padding = 1}},
        {"3x3 stride 2 pad 1, 17x19", {2, 7, 17, 19}, {9, 7, 3, 3}, {.stride = 2, .padding = 1}},
        {"3x3 dilation 2 pad 2, C*R*S = 297 > KC", {2, 33, 15, 14}, {13, 33, 3, 3}, {.padding = 2, .dilation = 2}},
        {"3x3 dilation 4 pad 4, 20x21", {1, 5, 20, 21}, {33, 5, 3, 3}, {.padding = 4, .dilation = 4}},
        {"1x1 stride 2, 9x10", {2, 6, 9, 10}, {7, 6, 1, 1}, {.stride = 2}},
        {"1x1 on 3x3 maps: 5 images in one GEMM", {5, 4, 3, 3}, {6, 4, 1, 1}, {}},
        {"3x3 pad 1 on 5x5 maps: images grouped", {4, 3, 5, 5}, {8, 3, 3, 3}, {.padding = 1}},
        {"2x3 kernel, stride (2,1), pad (0,2), dilation (1,3)",
         {2, 4, 12, 11},
         {5, 4, 2, 3},
         {.stride = Size2(2, 1), .padding = Size2(0, 2), .dilation = Size2(1, 3)}},
        {"3x3 at 100x100 with 100 channels: two dx chunks", {1, 100, 100, 100}, {3, 100, 3, 3}, {.padding = 1}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        Tensor x = randn(c.x), w = randn(c.w), b = randn({c.w[0]});
        Conv2dShape s = conv2d_shape(c.x, c.w, c.o);
        Tensor dy = randn({s.N, s.K, s.P, s.Q});
        ConvResult reference;
        {
            ImplicitGemmScope im2col(false);
            reference = run_conv(x, w, b, dy, c.o);
        }
        for (int threads : {1, 3}) {
            CAPTURE(threads);
            ThreadCountScope scope(threads);
            ConvResult r = run_conv(x, w, b, dy, c.o);
            CHECK(r.y == reference.y);
            CHECK(r.dx == reference.dx);
            CHECK(r.dw == reference.dw);
            CHECK(r.db == reference.db);
        }
    }
}

TEST_CASE("conv2d: implicit GEMM needs no im2col buffer, only a bounded chunk for dx") {
    // PSPNet's 3x3 4096->512 classifier conv on a batch of two 60x60 maps
    Conv2dShape s = conv2d_shape({2, 4096, 60, 60}, {512, 4096, 3, 3}, {.padding = 1});
    CHECK(conv2d_scratch_col(s) == 4096 * 9 * 3600);  // the im2col path: 531 MB
    s.implicit_gemm = true;
    CHECK(conv2d_dx_chunk_channels(s) == 258);
    CHECK(conv2d_scratch_col(s) == 258 * 9 * 3600);  // 32 MB
    Conv2dShape two_chunks = conv2d_shape({1, 100, 100, 100}, {3, 100, 3, 3}, {.padding = 1});  // (a case above)
    two_chunks.implicit_gemm = true;
    CHECK(conv2d_dx_chunk_channels(two_chunks) == 93);
    CHECK(conv2d_use_implicit_gemm(Device{}) == (gemm_choice() == GemmChoice::kStrata && !reproducible_gemm()));
}
