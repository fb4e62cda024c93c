// batchnorm2d: hand-computed cases (training and eval), the PyTorch fixture, N = 1, views,
// errors, and the module (registry, PyTorch names, running-statistics updates against nn.BatchNorm2d); the fused
// batchnorm2d_relu against batchnorm2d, add and relu run one after the other, and fuse_batchnorm_relu on a model.
// Its finite-difference gradient check on every input and parameter, the 1-vs-N-thread and non-contiguous checks and
// the CPU/CUDA parity run from its entries in tests/op_cases.h (tests/test_op_cases.cpp drives them).
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/registry.h"
#include "layers/add.h"
#include "layers/batchnorm2d.h"
#include "layers/relu.h"
#include "tests/fixtures.h"
#include "tests/gradcheck.h"

using namespace strata;
using namespace strata::testing;

namespace {

// x: (N=2, C=2, H=1, W=2). Channel 0 holds {2, 6, 2, 6} (mean 4, biased variance 4, invstd 0.5 with eps = 0),
// channel 1 holds {1, -1, 1, -1} (mean 0, variance 1, invstd 1). Every value here is exact in float.
const std::vector<float> kX = {2, 6, 1, -1, 2, 6, 1, -1};

// normal(offset, scale^2) values, built on the host so that the test needs no arithmetic ops
Tensor randn_scaled(const Shape& shape, float scale, float offset = 0.f) {
    std::vector<float> v = randn(shape).to_vector();
    for (float& e : v) e = e * scale + offset;
    return from_vector(v, shape);
}

void check_values(const Tensor& t, const std::vector<float>& expected) {
    std::vector<float> v = t.to_vector();
    REQUIRE(v.size() == expected.size());
    for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == doctest::Approx(expected[i]).epsilon(1e-6));
}

}  // namespace

TEST_CASE("batchnorm2d: hand-computed training forward, backward and running statistics") {
    Tensor x = from_vector(kX, {2, 2, 1, 2}).requires_grad_();
    Tensor weight = from_vector({2.f, 0.5f}, {2}).requires_grad_();
    Tensor bias = from_vector({1.f, -1.f}, {2}).requires_grad_();
    Tensor running_mean = zeros({2}), running_var = ones({2});
    Tensor y = batchnorm2d(x, weight, bias, running_mean, running_var, true, 0.1f, 0.0f);
    // xhat: channel 0 {-1, 1, -1, 1}, channel 1 {1, -1, 1, -1}; y = gamma * xhat + beta
    CHECK(y.to_vector() == std::vector<float>{-1, 3, -0.5f, -1.5f, -1, 3, -0.5f, -1.5f});
    // running_mean = 0.9 * 0 + 0.1 * mean; running_var = 0.9 * 1 + 0.1 * var * 4/3 (unbiased)
    check_values(running_mean, {0.4f, 0.f});
    check_values(running_var, {0.9f + 0.1f * 16.f / 3.f, 0.9f + 0.1f * 4.f / 3.f});

    // BN's output does not change when a channel's input is shifted or scaled, so dy = 1 or dy = xhat would give
    // dx = 0; this dy is neither. Channel 0: dy {1, 0, 0, 0}, sum(dy) = 1, sum(dy * xhat) = -1, g = 2 * 0.5 = 1:
    // dx = g * (dy - 1/4 + xhat/4) = {0.5, 0, -0.5, 0}. Channel 1: dy {0, 0, 0, 2}, sum(dy) = 2,
    // sum(dy * xhat) = -2, g = 0.5: dx = 0.5 * (dy - 1/2 + xhat/2) = {0, -0.5, 0, 0.5}.
    y.backward(from_vector({1, 0, 0, 0, 0, 0, 0, 2}, {2, 2, 1, 2}));
    check_values(x.grad(), {0.5f, 0, 0, -0.5f, -0.5f, 0, 0, 0.5f});
    check_values(weight.grad(), {-1, -2});  // sum(dy * xhat)
    check_values(bias.grad(), {1, 2});      // sum(dy)
}

TEST_CASE("batchnorm2d: hand-computed eval forward and backward") {
    Tensor x = from_vector(kX, {2, 2, 1, 2}).requires_grad_();
    Tensor weight = from_vector({3.f, 0.5f}, {2}).requires_grad_();
    Tensor bias = from_vector({1.f, -1.f}, {2}).requires_grad_();
    Tensor running_mean = from_vector({1.f, -1.f}, {2}), running_var = from_vector({4.f, 1.f}, {2});
    Tensor y = batchnorm2d(x, weight, bias, running_mean, running_var, false, 0.1f, 0.0f);
    // invstd {0.5, 1}, g = gamma * invstd = {1.5, 0.5}: channel 0 y = (x - 1) * 1.5 + 1, channel 1 (x + 1) * 0.5 - 1
    CHECK(y.to_vector() == std::vector<float>{2.5f, 8.5f, 0, -1, 2.5f, 8.5f, 0, -1});
    // eval leaves the running statistics alone
    CHECK(running_mean.to_vector() == std::vector<float>{1, -1});
    CHECK(running_var.to_vector() == std::vector<float>{4, 1});

    // dx = g * dy; xhat = (x - running_mean) * invstd: channel 0 {0.5, 2.5, ...}, channel 1 {2, 0, ...}
    y.backward(from_vector({1, 0, 0, 0, 0, 0, 2, 0}, {2, 2, 1, 2}));
    check_values(x.grad(), {1.5f, 0, 0, 0, 0, 0, 1.f, 0});
    check_values(weight.grad(), {0.5f, 4});
    check_values(bias.grad(), {1, 2});
}

TEST_CASE("batchnorm2d: matches PyTorch forward, backward and running statistics, plain and fused with the ReLU") {
    SafetensorsFile fx = load_fixture("batchnorm2d");
    for (const std::string& c : fixture_cases(fx)) {
        if (c == "module") continue;
        nlohmann::json p = fixture_params(fx, c);
        bool affine = p["affine"], running = p["running"], training = p["training"];
        // the fused cases: relu(bn(x) + residual), the residual optional
        bool fused = p.value("relu", false), with_residual = p.value("residual", false);
        Tensor x = fx.get(c + ".x").clone().requires_grad_();
        Tensor weight = affine ? fx.get(c + ".weight").clone().requires_grad_() : Tensor();
        Tensor bias = affine ? fx.get(c + ".bias").clone().requires_grad_() : Tensor();
        Tensor rm = running ? fx.get(c + ".running_mean").clone() : Tensor();
        Tensor rv = running ? fx.get(c + ".running_var").clone() : Tensor();
        Tensor residual = with_residual ? fx.get(c + ".residual").clone().requires_grad_() : Tensor();
        float momentum = p["momentum"], eps = p["eps"];
        Tensor y = fused ? batchnorm2d_relu(x, weight, bias, rm, rv, training, momentum, eps, residual)
                         : batchnorm2d(x, weight, bias, rm, rv, training, momentum, eps);
        check_close(y, fx.get(c + ".y"), 1e-5, 1e-5, c + " forward");
        if (running) {
            check_close(rm, fx.get(c + ".new_running_mean"), 1e-6, 1e-5, c + " running_mean");
            check_close(rv, fx.get(c + ".new_running_var"), 1e-6, 1e-5, c + " running_var");
        }
        y.backward(fx.get(c + ".dy"));
        check_close(x.grad(), fx.get(c + ".dx"), 1e-5, 1e-4, c + " dx");
        if (with_residual) check_close(residual.grad(), fx.get(c + ".dresidual"), 1e-6, 1e-6, c + " dresidual");
        if (affine) {
            // sums over N*H*W products: a looser absolute tolerance
            check_close(weight.grad(), fx.get(c + ".dweight"), 1e-4, 1e-4, c + " dweight");
            check_close(bias.grad(), fx.get(c + ".dbias"), 1e-4, 1e-4, c + " dbias");
        }
    }
}

TEST_CASE("batchnorm2d: N = 1 with H*W > 1, and a large-mean channel") {
    // one image: the statistics are over H*W only
    Tensor x = from_vector({1, 2, 3, 4, 10, 10, 10, 14}, {1, 2, 2, 2});
    Tensor y = batchnorm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 0.0f);
    // channel 0: mean 2.5, var 1.25; channel 1: mean 11, var 3 (deviations -1, -1, -1, 3)
    float s0 = 1.f / std::sqrt(1.25f), s1 = 1.f / std::sqrt(3.f);
    check_values(y, {-1.5f * s0, -0.5f * s0, 0.5f * s0, 1.5f * s0, -s1, -s1, -s1, 3 * s1});

    // mean 1e4, std 1: a one-pass E[x^2] - mean^2 in float would lose the variance entirely
    std::vector<float> big(64);
    for (size_t i = 0; i < big.size(); ++i) big[i] = 1e4f + (i % 2 ? 1.f : -1.f);
    Tensor rm = zeros({1}), rv = zeros({1});
    Tensor yb = batchnorm2d(from_vector(big, {2, 1, 4, 8}), Tensor(), Tensor(), rm, rv, true, 1.0f, 0.0f);
    check_values(rm, {1e4f});
    check_values(rv, {64.f / 63.f});  // momentum 1: the unbiased batch variance itself
    for (float v : yb.to_vector()) CHECK(std::abs(v) == doctest::Approx(1.f).epsilon(1e-4));
}

TEST_CASE("batchnorm2d: non-contiguous input and running statistics inside a larger buffer") {
    Tensor nhwc = randn({2, 3, 4, 3});  // (N, H, W, C)
    Tensor x = nhwc.permute({0, 3, 1, 2});  // (N, C, H, W) view
    REQUIRE(!x.is_contiguous());
    Tensor storage = zeros({7});
    Tensor rm = storage.narrow(0, 2, 3), rv = ones({3});  // a view with an offset, updated in place
    Tensor y = batchnorm2d(x, Tensor(), Tensor(), rm, rv, true, 0.5f, 1e-5f);
    Tensor rm2 = zeros({3}), rv2 = ones({3});
    Tensor y2 = batchnorm2d(x.contiguous(), Tensor(), Tensor(), rm2, rv2, true, 0.5f, 1e-5f);
    CHECK(y.to_vector() == y2.to_vector());
    std::vector<float> s = storage.to_vector(), expected = rm2.to_vector();
    CHECK(s[0] == 0.f);
    CHECK(s[1] == 0.f);
    for (size_t i = 0; i < 3; ++i) CHECK(s[2 + i] == expected[i]);
    CHECK(s[5] == 0.f);
    CHECK(s[6] == 0.f);

    GradcheckOptions options;
    options.tol = 2e-3;  // see the NOTE on batchnorm2d in tests/op_cases.h
    gradcheck("batchnorm2d permuted", [](const std::vector<Tensor>& in) {
        return batchnorm2d(in[0].permute({0, 3, 1, 2}), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 1e-5f);
    }, {randn_scaled({2, 4, 3, 3}, 2.f).requires_grad_()}, options);
}

TEST_CASE("batchnorm2d: errors") {
    Tensor x = randn({2, 3, 2, 2});
    Tensor rm = zeros({3}), rv = ones({3});
    CHECK_THROWS_WITH_AS(batchnorm2d(randn({2, 3}), Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: input must be 4-D (N,C,H,W), got shape [2, 3]"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(zeros({2, 3, 2, 2}, DType::I32), Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: input must be F32"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, ones({4}), Tensor(), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: weight must have shape [C] = [3] for input of shape "
                                           "[2, 3, 2, 2], got [4]"),
                         Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), zeros({3, 1}), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: bias must have shape [C] = [3]"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), Tensor(), zeros({2}), rv, true, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: running_mean must have shape [C] = [3]"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), Tensor(), rm, Tensor(), true, 0.1f, 1e-5f),
                         doctest::Contains("both defined or both undefined"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: eval mode normalises with the running statistics"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), Tensor(), rm, rv, true, 1.5f, 1e-5f),
                         doctest::Contains("batchnorm2d: momentum must be in [0, 1], got 1.5"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), Tensor(), rm, rv, true, 0.1f, -1.f),
                         doctest::Contains("batchnorm2d: eps must be >= 0"), Error);

    // one value per channel (PSPNet's bin-1 branch with batch size 1) fails in training and works in eval
    Tensor pooled = randn({1, 3, 1, 1});
    CHECK_THROWS_WITH_AS(batchnorm2d(pooled, Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("expected more than 1 value per channel when training, got input of shape "
                                           "[1, 3, 1, 1] (N*H*W = 1)"),
                         Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(pooled, Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("Use a batch size >= 2, or eval mode"), Error);
    CHECK(rm.to_vector() == std::vector<float>{0, 0, 0});  // a failed call changes nothing
    CHECK(batchnorm2d(pooled, Tensor(), Tensor(), rm, rv, false, 0.1f, 1e-5f).shape() == Shape{1, 3, 1, 1});
}

TEST_CASE("batchnorm2d: module and registry") {
    auto m = create_layer("batchnorm2d", {{"num_features", 3}});
    CHECK(m->type_name() == "BatchNorm2d");
    NamedTensors state = m->state_dict();
    std::vector<std::string> names;
    for (auto& [name, t] : state) names.push_back(name);
    // PyTorch's names and order, so that semseg checkpoints load
    CHECK(names == std::vector<std::string>{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"});
    CHECK(m->named_parameters().size() == 2);
    CHECK(state[0].second.to_vector() == std::vector<float>{1, 1, 1});
    CHECK(state[1].second.to_vector() == std::vector<float>{0, 0, 0});
    CHECK(state[2].second.to_vector() == std::vector<float>{0, 0, 0});
    CHECK(state[3].second.to_vector() == std::vector<float>{1, 1, 1});
    Tensor count = state[4].second;
    CHECK(count.dtype() == DType::I64);
    CHECK(count.shape() == Shape{});

    // training: batch statistics, buffers updated, one batch counted; eval: running statistics, nothing changes
    Tensor x = randn_scaled({2, 3, 2, 2}, 1.f, 5.f);
    m->train();
    m->forward(x);
    m->forward(x);
    CHECK(count.to_vector_i64() == std::vector<int64_t>{2});
    std::vector<float> rm = state[2].second.to_vector();
    for (float v : rm) CHECK(v > 0.5f);  // 0.19 * (a mean near 5)
    m->eval();
    Tensor y = m->forward(x);
    CHECK(count.to_vector_i64() == std::vector<int64_t>{2});
    CHECK(state[2].second.to_vector() == rm);
    CHECK(y.shape() == x.shape());

    auto plain = create_layer("batchnorm2d", {{"num_features", 4}, {"affine", false}, {"eps", 1e-3},
                                              {"momentum", 0.5}});
    CHECK(plain->named_parameters().empty());
    CHECK(plain->named_buffers().size() == 3);
    auto* bn = dynamic_cast<BatchNorm2d*>(plain.get());
    REQUIRE(bn != nullptr);
    CHECK(bn->eps == doctest::Approx(1e-3));
    CHECK(bn->momentum == doctest::Approx(0.5));

    CHECK_THROWS_WITH_AS(create_layer("batchnorm2d", {{"num_features", 3}, {"track_running_stats", false}}),
                         doctest::Contains("unknown attribute 'track_running_stats'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("batchnorm2d"), doctest::Contains("missing required attribute 'num_features'"),
                         Error);
    CHECK_THROWS_WITH_AS(create_layer("batchnorm2d", {{"num_features", 0}}),
                         doctest::Contains("num_features must be positive"), Error);
    CHECK_THROWS_WITH_AS(m->forward(randn({2, 4, 2, 2})),
                         doctest::Contains("batchnorm2d: weight must have shape [C] = [4]"), Error);
    m->train();
    CHECK_THROWS_WITH_AS(m->forward(randn({1, 3, 1, 1})), doctest::Contains("more than 1 value per channel"), Error);
    CHECK(count.to_vector_i64() == std::vector<int64_t>{2});  // a failed forward is not counted
}

namespace {

// BN(3) ReLU BN(3) BN(3) ReLU, and (BN(3) ReLU) nested in a Sequential of its own: three BN + ReLU pairs.
std::shared_ptr<Sequential> bn_relu_stack() {
    auto inner = std::make_shared<Sequential>(
        std::vector<std::shared_ptr<Module>>{std::make_shared<BatchNorm2d>(3), std::make_shared<ReLU>()});
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<BatchNorm2d>(3), std::make_shared<ReLU>(), std::make_shared<BatchNorm2d>(3),
        std::make_shared<BatchNorm2d>(3), std::make_shared<ReLU>(), inner});
}

}  // namespace

TEST_CASE("batchnorm2d: fuse_batchnorm_relu computes what BN then ReLU computed and keeps every name") {
    auto plain = bn_relu_stack(), fused = bn_relu_stack();
    CHECK(fuse_batchnorm_relu(*fused) == 3);
    CHECK(fuse_batchnorm_relu(*fused) == 0);  // already fused
    auto* first = dynamic_cast<BatchNorm2d*>(fused->named_children()[0].second.get());
    auto* middle = dynamic_cast<BatchNorm2d*>(fused->named_children()[2].second.get());
    REQUIRE((first && middle));
    CHECK(first->relu);
    CHECK(!middle->relu);  // followed by a BN, not a ReLU
    std::vector<std::string> plain_names, fused_names;
    for (auto& [name, t] : plain->state_dict()) plain_names.push_back(name);
    for (auto& [name, t] : fused->state_dict()) fused_names.push_back(name);
    CHECK(fused_names == plain_names);

    Tensor x = randn_scaled({2, 3, 4, 5}, 2.f, 0.5f);
    Tensor dy = randn({2, 3, 4, 5});
    Tensor xp = x.clone().requires_grad_(), xf = x.clone().requires_grad_();
    Tensor yp = plain->forward(xp), yf = fused->forward(xf);
    CHECK(yf.to_vector() == yp.to_vector());
    yp.backward(dy);
    yf.backward(dy);
    CHECK(xf.grad().to_vector() == xp.grad().to_vector());
    auto pp = plain->named_parameters(), pf = fused->named_parameters();
    REQUIRE(pp.size() == pf.size());
    for (size_t i = 0; i < pp.size(); ++i) {
        INFO(pp[i].first);
        CHECK(pf[i].second.grad().to_vector() == pp[i].second.grad().to_vector());
    }
    NamedTensors sp = plain->state_dict(), sf = fused->state_dict();
    for (size_t i = 0; i < sp.size(); ++i) {
        INFO(sp[i].first);
        if (sp[i].second.dtype() == DType::F32) CHECK(sf[i].second.to_vector() == sp[i].second.to_vector());
        else CHECK(sf[i].second.to_vector_i64() == sp[i].second.to_vector_i64());  // num_batches_tracked
    }
}

TEST_CASE("batchnorm2d_relu: the same bits as batchnorm2d, add and relu, and its errors") {
    Tensor x = randn_scaled({2, 3, 4, 5}, 2.f, 1.f), r = randn({2, 3, 4, 5}), dy = randn({2, 3, 4, 5});
    Tensor w = from_vector({1.5f, 0.5f, -1.f}, {3}), b = from_vector({0.1f, -0.2f, 0.3f}, {3});
    for (bool with_residual : {false, true}) {
        for (bool training : {true, false}) {
            CAPTURE(with_residual);
            CAPTURE(training);
            std::vector<Tensor> ins = {x.clone(), w.clone(), b.clone(), r.clone()};
            std::vector<Tensor> ref = {x.clone(), w.clone(), b.clone(), r.clone()};
            for (Tensor& t : ins) t.requires_grad_();
            for (Tensor& t : ref) t.requires_grad_();
            Tensor rm1 = zeros({3}), rv1 = ones({3}), rm2 = zeros({3}), rv2 = ones({3});
            Tensor yf = batchnorm2d_relu(ins[0], ins[1], ins[2], rm1, rv1, training, 0.1f, 1e-5f,
                                         with_residual ? ins[3] : Tensor());
            Tensor z = batchnorm2d(ref[0], ref[1], ref[2], rm2, rv2, training, 0.1f, 1e-5f);
            Tensor yr = relu(with_residual ? add(z, ref[3]) : z);
            CHECK(yf.to_vector() == yr.to_vector());
            CHECK(rv1.to_vector() == rv2.to_vector());
            yf.backward(dy);
            yr.backward(dy);
            for (size_t i = 0; i < (with_residual ? 4u : 3u); ++i) {
                CAPTURE(i);
                CHECK(ins[i].grad().to_vector() == ref[i].grad().to_vector());
            }
        }
    }
    CHECK_THROWS_WITH_AS(batchnorm2d_relu(x, w, b, Tensor(), Tensor(), true, 0.1f, 1e-5f, randn({2, 3, 4, 4})),
                         doctest::Contains("batchnorm2d_relu: residual must have the input's shape [2, 3, 4, 5]"),
                         Error);
    CHECK_THROWS_WITH_AS(batchnorm2d_relu(x, w, b, Tensor(), Tensor(), false, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d_relu: eval mode normalises with the running statistics"),
                         Error);
}

TEST_CASE("batchnorm2d: module matches nn.BatchNorm2d and loads its state_dict") {
    SafetensorsFile fx = load_fixture("batchnorm2d");
    std::vector<std::string> torch_names = fixture_params(fx, "module")["names"];

    BatchNorm2d bn(3);
    bn.train();
    bn.forward(fx.get("module.batch0"));
    bn.forward(fx.get("module.batch1"));
    bn.eval();
    Tensor y = bn.forward(fx.get("module.batch2"));
    check_close(y, fx.get("module.y_eval"), 1e-5, 1e-5, "module eval output");

    NamedTensors state = bn.state_dict();
    REQUIRE(state.size() == torch_names.size());
    for (size_t i = 0; i < state.size(); ++i) {
        const auto& [name, t] = state[i];
        CHECK(name == torch_names[i]);
        Tensor expected = fx.get("module.state." + name);
        if (t.dtype() == DType::I64) CHECK(t.to_vector_i64() == expected.to_vector_i64());
        else check_close(t, expected, 1e-6, 1e-5, "module " + name);
    }

    // a PyTorch state_dict loads by name (strict) into a fresh module and gives the same eval output
    std::map<std::string, Tensor> torch_state;
    for (const std::string& name : torch_names) torch_state[name] = fx.get("module.state." + name);
    BatchNorm2d fresh(3);
    fresh.load_state_dict(torch_state);
    fresh.eval();
    check_close(fresh.forward(fx.get("module.batch2")), fx.get("module.y_eval"), 1e-5, 1e-5, "loaded module");
    CHECK(fresh.num_batches_tracked.to_vector_i64() == std::vector<int64_t>{2});
}
