// The autograd engine on small graphs: chains, fan-out, reuse of a tensor, leaves reached twice, no-grad,
// detach, saved tensors freed after backward, and the errors for misuse.
//
// The graphs are built from two tiny ops defined here with record() (elementwise product and sum), the same way a
// layer or plugin defines its backward; the values are checked against derivatives worked out by hand.
#include <doctest/doctest.h>

#include "framework/autograd.h"
#include "framework/check.h"
#include "layers/relu.h"

using namespace strata;

namespace {

int g_times_backward_calls = 0;

// a * b elementwise: d/da = dout * b, d/db = dout * a.
Tensor times(const Tensor& a, const Tensor& b) {
    Tensor y = empty_like(a);
    for (int64_t i = 0; i < a.numel(); ++i) y.f32()[i] = a.f32()[i] * b.f32()[i];
    if (any_requires_grad({a, b})) {
        Tensor sa = a.detach(), sb = b.detach();
        record(y, "times", {a, b}, [sa, sb](const Tensor& dout, const std::vector<bool>& needs) {
            ++g_times_backward_calls;
            Tensor da, db;
            if (needs[0]) {
                da = empty_like(sa);
                for (int64_t i = 0; i < sa.numel(); ++i) da.f32()[i] = dout.f32()[i] * sb.f32()[i];
            }
            if (needs[1]) {
                db = empty_like(sb);
                for (int64_t i = 0; i < sb.numel(); ++i) db.f32()[i] = dout.f32()[i] * sa.f32()[i];
            }
            return std::vector<Tensor>{da, db};
        });
    }
    return y;
}

// a + b for one-element tensors: both gradients are dout (the same tensor handed to two inputs).
Tensor plus(const Tensor& a, const Tensor& b) {
    Tensor y = full({}, a.item() + b.item());
    if (any_requires_grad({a, b}))
        record(y, "plus", {a, b}, [](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{dout, dout};
        });
    return y;
}

// Sum of all elements, as a one-element tensor.
Tensor total(const Tensor& a) {
    Tensor y = zeros({});
    for (int64_t i = 0; i < a.numel(); ++i) y.f32()[0] += a.f32()[i];
    if (any_requires_grad({a})) {
        Shape shape = a.shape();
        record(y, "total", {a}, [shape](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{full(shape, dout.item())};
        });
    }
    return y;
}

}  // namespace

TEST_CASE("autograd: chain rule through a chain of ops") {
    // L = sum(relu(x) * w)  =>  dL/dx = w * [x > 0], dL/dw = relu(x)
    Tensor x = from_vector({-1, 2, 3}, {3}).requires_grad_();
    Tensor w = from_vector({4, 5, 6}, {3}).requires_grad_();
    Tensor loss = total(times(relu(x), w));
    CHECK(loss.item() == 28.f);
    CHECK(loss.grad_fn()->name == "total");
    loss.backward();
    CHECK(x.grad().to_vector() == std::vector<float>{0, 5, 6});
    CHECK(w.grad().to_vector() == std::vector<float>{0, 2, 3});
}

TEST_CASE("autograd: fan-out sums the gradients of every use") {
    // y = relu(x) feeds two consumers: L = sum(y * y) + sum(y * c)  =>  dL/dy = 2y + c
    Tensor x = from_vector({1, 2}, {2}).requires_grad_();
    Tensor c = from_vector({10, 20}, {2});
    Tensor y = relu(x);
    Tensor loss = plus(total(times(y, y)), total(times(y, c)));  // times(y, y): one tensor as both inputs
    loss.backward();
    CHECK(x.grad().to_vector() == std::vector<float>{12, 24});
}

TEST_CASE("autograd: gradients accumulate in leaves across backward calls") {
    Tensor x = from_vector({1, 2}, {2}).requires_grad_();
    total(times(x, x)).backward();
    CHECK(x.grad().to_vector() == std::vector<float>{2, 4});
    total(times(x, from_vector({10, 20}, {2}))).backward();
    CHECK(x.grad().to_vector() == std::vector<float>{12, 24});
    x.set_grad(Tensor());
    CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: a leaf reached by several paths inside one graph") {
    // x used by two narrows of overlapping ranges and then combined: L = sum(x[0:2] * x[1:3])
    //   dL/dx0 = x1, dL/dx1 = x0 + x2, dL/dx2 = x1
    Tensor x = from_vector({2, 3, 5}, {3}).requires_grad_();
    Tensor loss = total(times(x.narrow(0, 0, 2).contiguous(), x.narrow(0, 1, 2).contiguous()));
    CHECK(loss.item() == 2 * 3 + 3 * 5);
    loss.backward();
    CHECK(x.grad().to_vector() == std::vector<float>{3, 7, 3});
}

TEST_CASE("autograd: fan-out of a non-leaf node into one graph") {
    // h = x * x is used three times: twice by one node and once through reshapes.
    //   L = sum(h * h) + sum(h)  with h = x^2  =>  dL/dx = (2h + 1) * 2x
    Tensor x = from_vector({1, 2, 3}, {3}).requires_grad_();
    Tensor h = times(x, x);
    Tensor loss = plus(total(times(h, h)), total(h.reshape({3, 1}).reshape({3})));
    loss.backward();
    std::vector<float> g = x.grad().to_vector();
    for (int i = 0; i < 3; ++i) {
        float xi = float(i + 1), hi = xi * xi;
        CHECK(g[size_t(i)] == doctest::Approx((2 * hi + 1) * 2 * xi));
    }
}

TEST_CASE("autograd: views propagate gradients to the right elements") {
    Tensor x = arange(6).reshape({2, 3}).detach().requires_grad_();
    Tensor w = from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
    // L = sum(x^T * w): dL/dx = w^T
    Tensor loss = total(times(x.transpose(0, 1).contiguous(), w));
    loss.backward();
    CHECK(x.grad().to_vector() == std::vector<float>{1, 3, 5, 2, 4, 6});
}

TEST_CASE("autograd: no-grad scope, detach and constants record nothing") {
    Tensor x = ones({2}).requires_grad_();
    {
        NoGradGuard guard;
        CHECK_FALSE(grad_enabled());
        Tensor y = relu(x);
        CHECK_FALSE(y.requires_grad());
        CHECK(y.grad_fn() == nullptr);
    }
    CHECK(grad_enabled());
    Tensor d = relu(x.detach());
    CHECK_FALSE(d.requires_grad());
    Tensor c = relu(ones({2}));
    CHECK(c.grad_fn() == nullptr);
    CHECK_THROWS_WITH_AS(c.backward(), doctest::Contains("does not require grad"), Error);
}

TEST_CASE("autograd: only the inputs that need a gradient get one") {
    Tensor x = from_vector({1, 2}, {2}).requires_grad_();
    Tensor c = from_vector({3, 4}, {2});
    total(times(x, c)).backward();
    CHECK(x.grad().defined());
    CHECK_FALSE(c.grad().defined());
}

TEST_CASE("autograd: saved tensors are freed after backward; a second backward is an error") {
    Tensor x = from_vector({1, 2}, {2}).requires_grad_();
    Tensor loss = total(times(x, x));
    CHECK(loss.grad_fn()->inputs[0].fn->backward != nullptr);
    loss.backward();
    CHECK(loss.grad_fn()->inputs[0].fn->backward == nullptr);  // the lambda and its saved tensors are gone
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("backward through the graph a second time"), Error);

    Tensor y = from_vector({1, 2}, {2}).requires_grad_();
    Tensor l2 = total(times(y, y));
    g_times_backward_calls = 0;
    l2.backward(Tensor(), true);  // retain_graph
    l2.backward();
    CHECK(g_times_backward_calls == 2);
    CHECK(y.grad().to_vector() == std::vector<float>{4, 8});  // 2 * 2y, accumulated
}

TEST_CASE("autograd: saved tensors do not keep the graph alive by themselves") {
    std::weak_ptr<Node> node;
    {
        Tensor x = ones({3}).requires_grad_();
        Tensor y = relu(x);
        node = y.grad_fn();
        CHECK_FALSE(node.expired());
    }
    CHECK(node.expired());  // no reference cycle between an output and its node
}

TEST_CASE("autograd: backward needs a scalar or an explicit gradient of the right shape") {
    Tensor x = ones({2}).requires_grad_();
    Tensor y = relu(x);
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("reduce it to one element first"), Error);
    CHECK_THROWS_WITH_AS(y.backward(ones({3})), doctest::Contains("gradient shape [3] does not match"), Error);
    y.backward(full({2}, 3.f));
    CHECK(x.grad().to_vector() == std::vector<float>{3, 3});
    Tensor r = relu(x);
    CHECK_THROWS_WITH_AS(r.requires_grad_(), doctest::Contains("applies to leaf tensors"), Error);
}

TEST_CASE("autograd: print_graph lists the nodes") {
    Tensor x = ones({2}).requires_grad_();
    Tensor loss = total(relu(x));
    std::string g = print_graph(loss);
    CHECK(g.find("total -> []") != std::string::npos);
    CHECK(g.find("relu -> [2]") != std::string::npos);
    CHECK(g.find("leaf [2]") != std::string::npos);
}

TEST_CASE("autograd: the gradient-ready hook fires once per leaf, after its last contribution") {
    // h = w * x;  L = sum((h * v) * w): w is used by the first and the last node, v in the middle, u not at all.
    //   dL/dv = h * w = [3, 16];  dL/dx = v * w * w = [5, 24];  dL/dw = h * v + v * w * x = [30, 96]
    // The engine runs the nodes in reverse: the last times (first contribution to w), the middle one (v final),
    // then the first (w's second contribution; w and x final).
    Tensor w = from_vector({1, 2}, {2}).requires_grad_();
    Tensor x = from_vector({3, 4}, {2}).requires_grad_();
    Tensor v = from_vector({5, 6}, {2}).requires_grad_();
    Tensor u = from_vector({7, 8}, {2}).requires_grad_();
    Tensor loss = total(times(times(times(w, x), v), w));
    struct Event {
        std::string leaf;
        std::vector<float> grad;
        int times_calls;
    };
    std::vector<Event> events;
    auto name_of = [&](const Tensor& t) {
        for (auto [name, leaf] : {std::pair{"w", w}, {"x", x}, {"v", v}, {"u", u}})
            if (t.is_same(leaf)) return std::string(name);
        return std::string("?");
    };
    g_times_backward_calls = 0;
    {
        GradReadyHookGuard guard([&](const Tensor& leaf) {
            events.push_back({name_of(leaf), leaf.grad().to_vector(), g_times_backward_calls});
        });
        loss.backward();
    }
    REQUIRE(events.size() == 3);
    CHECK(events[0].leaf == "v");
    CHECK(events[0].grad == std::vector<float>{3, 16});
    CHECK(events[0].times_calls == 2);  // before the first times node ran: before the backward ended
    CHECK(events[1].leaf == "w");
    CHECK(events[1].grad == std::vector<float>{30, 96});  // both contributions in
    CHECK(events[2].leaf == "x");
    CHECK(events[2].grad == std::vector<float>{5, 24});
    CHECK(events[1].times_calls == 3);
    // the guard is gone: a backward calls no hook
    total(times(u, u)).backward();
    CHECK(events.size() == 3);
}

TEST_CASE("autograd: the gradient-ready hook on a backward from a leaf") {
    Tensor x = from_vector({1, 2}, {2}).requires_grad_();
    int calls = 0;
    GradReadyHookGuard guard([&](const Tensor& leaf) {
        ++calls;
        CHECK(leaf.is_same(x));
        CHECK(leaf.grad().to_vector() == std::vector<float>{1, 1});
    });
    x.backward(ones({2}));
    CHECK(calls == 1);
}
