// SGD and the poly schedule against torch.optim.SGD (tests/fixtures/gen_sgd.py), plus the update rule by hand.
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/optimizer.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("sgd: one step by hand") {
    // d = g + wd*p = 1 + 0.5*2 = 2; v = d = 2 (first step); p = 2 - 0.1*2 = 1.8
    Tensor p = from_vector({2.f}, {1}).requires_grad_();
    SGD opt({p}, SGDOptions{0.1f, 0.9f, 0.5f});
    p.set_grad(from_vector({1.f}, {1}));
    opt.step();
    CHECK(p.item() == doctest::Approx(1.8f));
    // second step: d = 1 + 0.5*1.8 = 1.9; v = 0.9*2 + 1.9 = 3.7; p = 1.8 - 0.37 = 1.43
    opt.step();
    CHECK(p.item() == doctest::Approx(1.43f));
    opt.zero_grad();
    CHECK_FALSE(p.grad().defined());
    opt.step();  // no gradient: the parameter is skipped, as in PyTorch
    CHECK(p.item() == doctest::Approx(1.43f));
}

TEST_CASE("sgd: five steps match torch.optim.SGD with momentum, weight decay, groups and poly LR") {
    SafetensorsFile fx = load_fixture("sgd");
    for (const std::string& c : fixture_cases(fx)) {
        nlohmann::json prm = fixture_params(fx, c);
        Tensor p0 = fx.get(c + ".p0.init").clone().requires_grad_();
        Tensor p1 = fx.get(c + ".p1.init").clone().requires_grad_();
        float base_lr = prm["base_lr"];
        SGDOptions o;
        o.lr = base_lr;
        o.momentum = prm["momentum"];
        o.weight_decay = prm["weight_decay"];
        o.nesterov = prm["nesterov"];
        SGD opt({ParamGroup{"backbone", {p0}, 1.0f}, ParamGroup{"head", {p1}, float(prm["head_lr_mult"])}}, o);
        for (int t = 0; t < int(prm["steps"]); ++t) {
            if (c == "poly") opt.set_lr(poly_lr(base_lr, t, prm["max_iter"], prm["power"]));
            p0.set_grad(fx.get(c + ".p0.grad" + std::to_string(t)));
            p1.set_grad(fx.get(c + ".p1.grad" + std::to_string(t)));
            opt.step();
            check_close(p0, fx.get(c + ".p0.step" + std::to_string(t)), 1e-6, 1e-5, c + " p0 step " + std::to_string(t));
            check_close(p1, fx.get(c + ".p1.step" + std::to_string(t)), 1e-6, 1e-5, c + " p1 step " + std::to_string(t));
        }
    }
}

TEST_CASE("sgd: momentum state round-trips for checkpoints") {
    Tensor a = from_vector({1.f, 2.f}, {2}).requires_grad_();
    Tensor b = from_vector({1.f, 2.f}, {2}).requires_grad_();
    SGD oa({a}, SGDOptions{}), ob({b}, SGDOptions{});
    a.set_grad(from_vector({0.5f, -1.f}, {2}));
    oa.step();
    ob.load_state(oa.state());  // b's optimizer continues a's trajectory
    b.copy_(a.detach());
    for (int i = 0; i < 3; ++i) {
        a.set_grad(from_vector({0.1f, 0.2f}, {2}));
        b.set_grad(from_vector({0.1f, 0.2f}, {2}));
        oa.step();
        ob.step();
    }
    CHECK(a.to_vector() == b.to_vector());
    CHECK(oa.state().size() == 1);
    CHECK(oa.state()[0].first == "params.0.momentum");
    CHECK_THROWS_WITH_AS(ob.load_state({{"params.0.momentum", zeros({3})}}), doctest::Contains("has shape [3]"), Error);
    CHECK_THROWS_WITH_AS(ob.load_state({{"head.0.momentum", zeros({2})}}), doctest::Contains("matches no parameter group"),
                         Error);
}

TEST_CASE("poly LR schedule") {
    CHECK(poly_lr(0.01f, 0, 100, 0.9f) == doctest::Approx(0.01f));
    CHECK(poly_lr(0.01f, 50, 100, 0.9f) == doctest::Approx(0.01 * std::pow(0.5, 0.9)));
    CHECK(poly_lr(0.01f, 100, 100, 0.9f) == 0.f);
    CHECK(poly_lr(0.01f, 150, 100, 0.9f) == 0.f);
    CHECK_THROWS_WITH_AS(poly_lr(0.01f, 0, 0, 0.9f), doctest::Contains("max_iter must be > 0"), Error);
}

TEST_CASE("sgd: bad options and parameters are rejected") {
    Tensor p = zeros({2}).requires_grad_();
    SGDOptions neg;
    neg.lr = -1;
    CHECK_THROWS_WITH_AS(SGD({p}, neg), doctest::Contains("lr must be >= 0"), Error);
    CHECK_THROWS_WITH_AS(SGD({zeros({2}, DType::I32)}, SGDOptions{}), doctest::Contains("not an F32 leaf"), Error);
    SGD opt({p}, SGDOptions{});
    p.set_grad(zeros({3}));
    CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("is [2] on cpu but its gradient is [3] on cpu"), Error);
}
