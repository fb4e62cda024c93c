// Modules (naming, state_dict, strict loading, modes, devices, Sequential) and the layer registry.
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/registry.h"
#include "layers/relu.h"

using namespace strata;

namespace {

// y = x * scale + shift per element, with one buffer counting forward calls in training mode.
struct Affine : Module {
    Tensor scale, shift, calls;
    explicit Affine(int64_t n) {
        scale = register_parameter("weight", ones({n}));
        shift = register_parameter("bias", zeros({n}));
        calls = register_buffer("calls", zeros({}, DType::I64));
    }
    Tensor forward(const Tensor& x) override {
        if (is_training()) calls.i64()[0] += 1;
        Tensor y = x.clone();
        for (int64_t i = 0; i < y.numel(); ++i) y.f32()[i] = x.contiguous().f32()[i] * scale.f32()[i] + shift.f32()[i];
        return y;
    }
    std::string type_name() const override { return "Affine"; }
};

struct Net : Module {
    std::shared_ptr<Affine> first, second;
    std::shared_ptr<Sequential> body;
    Net() {
        first = register_module("first", std::make_shared<Affine>(3));
        body = register_module("body", std::make_shared<Sequential>());
        body->append(std::make_shared<Affine>(3));
        body->append(std::make_shared<ReLU>());
        second = register_module("second", std::make_shared<Affine>(3));
    }
    Tensor forward(const Tensor& x) override { return second->forward(body->forward(first->forward(x))); }
};

std::vector<std::string> names(const NamedTensors& v) {
    std::vector<std::string> out;
    for (auto& [n, t] : v) out.push_back(n);
    return out;
}

std::shared_ptr<Module> make_affine(Attrs& a) { return std::make_shared<Affine>(a.require_int("features")); }
REGISTER_LAYER("test_affine", make_affine);

}  // namespace

TEST_CASE("module: dotted names in registration order, as PyTorch names them") {
    Net net;
    CHECK(names(net.named_parameters()) == std::vector<std::string>{"first.weight", "first.bias", "body.0.weight",
                                                                    "body.0.bias", "second.weight", "second.bias"});
    CHECK(names(net.named_buffers()) == std::vector<std::string>{"first.calls", "body.0.calls", "second.calls"});
    CHECK(names(net.state_dict()) == std::vector<std::string>{"first.weight", "first.bias", "first.calls",
                                                              "body.0.weight", "body.0.bias", "body.0.calls",
                                                              "second.weight", "second.bias", "second.calls"});
    CHECK(net.num_parameters() == 18);
    for (const Tensor& p : net.parameters()) CHECK(p.requires_grad());
}

TEST_CASE("module: load_state_dict copies by name and checks shapes strictly") {
    Net a, b;
    a.first->scale.fill_(2.f);
    a.second->shift.fill_(-1.f);
    std::map<std::string, Tensor> state;
    for (auto& [n, t] : a.state_dict()) state[n] = t.clone();
    b.load_state_dict(state);
    CHECK(b.first->scale.to_vector() == std::vector<float>{2, 2, 2});
    CHECK(b.second->shift.to_vector() == std::vector<float>{-1, -1, -1});
    CHECK(b.first->scale.impl() != a.first->scale.impl());  // values copied, tensors not shared

    auto bad = state;
    bad["body.0.weight"] = zeros({4});
    CHECK_THROWS_WITH_AS(b.load_state_dict(bad),
                         doctest::Contains("'body.0.weight' has shape [4] in the checkpoint but [3] in the model"), Error);
    auto missing = state;
    missing.erase("second.bias");
    missing["extra.weight"] = zeros({1});
    CHECK_THROWS_WITH_AS(b.load_state_dict(missing),
                         doctest::Contains("Missing from the checkpoint: second.bias. Not in the model: extra.weight"),
                         Error);
    LoadReport r = b.load_state_dict(missing, false);
    CHECK(r.missing == std::vector<std::string>{"second.bias"});
    CHECK(r.unexpected == std::vector<std::string>{"extra.weight"});
}

TEST_CASE("module: train and eval reach every child; forward follows the mode") {
    Net net;
    Tensor x = ones({3});
    net.forward(x);
    CHECK(net.body->named_children()[0].second->state_dict()[2].second.to_vector_i64()[0] == 1);
    net.eval();
    CHECK_FALSE(net.is_training());
    CHECK_FALSE(net.first->is_training());
    CHECK_FALSE(net.body->named_children()[1].second->is_training());
    net.forward(x);
    CHECK(net.first->calls.to_vector_i64()[0] == 1);  // eval: not counted
    net.train();
    CHECK(net.second->is_training());
}

TEST_CASE("module: to(device) keeps tensor identity; zero_grad clears gradients") {
    Net net;
    TensorImpl* before = net.first->scale.impl();
    net.to(kCPU);
    CHECK(net.first->scale.impl() == before);
    net.first->scale.set_grad(ones({3}));
    net.zero_grad();
    CHECK_FALSE(net.first->scale.grad().defined());
}

TEST_CASE("module: misuse is reported") {
    struct Twice : Module {
        Twice() {
            register_parameter("w", zeros({1}));
            register_buffer("w", zeros({1}));
        }
    };
    CHECK_THROWS_WITH_AS(Twice(), doctest::Contains("the name 'w' is registered twice"), Error);
    struct Dotted : Module {
        Dotted() { register_parameter("a.b", zeros({1})); }
    };
    CHECK_THROWS_WITH_AS(Dotted(), doctest::Contains("bad member name 'a.b'"), Error);
    Module plain;
    CHECK_THROWS_WITH_AS(plain.forward(zeros({1})), doctest::Contains("has no single-input forward"), Error);
}

TEST_CASE("registry: layers are built by name with checked attributes") {
    auto m = create_layer("test_affine", {{"features", 4}});
    CHECK(m->type_name() == "Affine");
    CHECK(m->named_parameters()[0].second.shape() == Shape{4});
    CHECK_THROWS_WITH_AS(create_layer("test_afine", {{"features", 4}}),
                         doctest::Contains("unknown layer 'test_afine' (known layers: "), Error);
    CHECK_THROWS_WITH_AS(create_layer("test_affine", {{"features", 4}, {"featurs", 5}}),
                         doctest::Contains("unknown attribute 'featurs'; valid attributes: features"), Error);
    CHECK_THROWS_WITH_AS(create_layer("test_affine", nlohmann::json::object()),
                         doctest::Contains("missing required attribute 'features'"), Error);
    CHECK_THROWS_WITH_AS(create_layer("test_affine", {{"features", "four"}}),
                         doctest::Contains("attribute 'features' must be an integer, got \"four\""), Error);
    CHECK_THROWS_WITH_AS(register_layer("test_affine", make_affine, "my_test.cpp"),
                         doctest::Contains("layer 'test_affine' is registered twice: by tests/test_module.cpp and by "
                                           "my_test.cpp"),
                         Error);
}

TEST_CASE("registry: a sequential block from a JSON spec") {
    nlohmann::json spec = nlohmann::json::parse(R"({"type": "sequential", "layers": [
        {"type": "test_affine", "features": 2}, {"type": "relu"}]})");
    auto seq = create_layer_from_spec(spec);
    CHECK(names(seq->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias"});
    CHECK(seq->forward(from_vector({-1, 2}, {2})).to_vector() == std::vector<float>{0, 2});
    CHECK_THROWS_WITH_AS(create_layer_from_spec(nlohmann::json::parse(R"({"layers": []})")),
                         doctest::Contains("must be a JSON object with a \"type\" string"), Error);
}

TEST_CASE("registry: every built-in layer is registered") {
    // A dropped registrar (e.g. a static library losing an object file) must fail a test, not go unnoticed.
    for (const char* name : {"relu", "sequential"}) CHECK_MESSAGE(has_layer(name), name);
}
