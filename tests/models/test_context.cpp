// Context modules chosen by name (models/pspnet/context.h): ppm and none come with PSPNet, an unknown or unusable
// name is an error listing the registered ones, a name taken twice names both owners; the aspp example plugin
// (plugins/examples/aspp.cpp) loads, builds DeepLab v3's ASPP into a PSPNet that runs forward and backward with the
// right shapes and trains; the programs list the context modules and refuse an unknown one.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/optimizer.h"
#include "framework/plugin.h"
#include "framework/random.h"
#include "framework/registration.h"
#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/pspnet.h"
#include "tests/models/run_program.h"
#include "tests/models/tiny_model.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

const std::string kAspp = "build/plugins/aspp.so";

PSPNetConfig tiny_with(const std::string& context) {
    PSPNetConfig c;
    c.backbone.depth = 18;
    c.backbone.blocks = {1, 1, 1, 1};
    c.backbone.width = 0.125;  // layer4: 64 channels; ASPP: 32 per branch
    c.classes = 3;
    c.dropout = 0;
    c.context = context;
    return c;
}

ContextModule make_nothing(int64_t in_channels, const PSPNetConfig&) { return {nullptr, in_channels}; }
ContextModule make_no_channels(int64_t, const PSPNetConfig&) { return {nullptr, 0}; }

std::shared_ptr<Module> child(const std::shared_ptr<Module>& m, const std::string& name) {
    for (auto& [n, c] : m->named_children())
        if (n == name) return c;
    FAIL("no child " << name);
    return nullptr;
}

}  // namespace

TEST_CASE("context: ppm and none are PSPNet's own, an unknown name lists the registered ones") {
    CHECK(registration_owner("context module", "ppm") == "models/pspnet/context.cpp");
    CHECK(registration_owner("context module", "none") == "models/pspnet/context.cpp");
    CHECK(has_context("ppm"));

    PSPNetConfig c = tiny_with("ppm");
    PSPNet with_ppm(c);
    CHECK(std::dynamic_pointer_cast<PPM>(with_ppm.context) != nullptr);
    CHECK(with_ppm.cls->named_parameters()[0].second.size(1) == 128);  // 64 + 4 bins x 16

    c.context = "no_such_module";
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("unknown context module 'no_such_module' (config key 'context'); "
                                                      "registered: "), Error);
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("none, ppm"), Error);
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("add it with plugins=[path/to/plugin.so]"), Error);
    c.context = "cls";  // would clash with the classifier's parameter names
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("context module name 'cls' is not allowed"), Error);

    CHECK_THROWS_WITH_AS(register_context("ppm", make_nothing, "tests/models/test_context.cpp"),
                         doctest::Contains("context module 'ppm' is registered twice: by models/pspnet/context.cpp and "
                                           "by tests/models/test_context.cpp"), Error);
    register_context("test_no_channels", make_no_channels, "tests/models/test_context.cpp");
    c.context = "test_no_channels";
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("context module 'test_no_channels' "
                                                      "(tests/models/test_context.cpp) gave 0 output channels"), Error);
}

TEST_CASE("context: the aspp plugin builds DeepLab v3's ASPP into PSPNet, which runs, backpropagates and trains") {
    CHECK_THROWS_WITH_AS(PSPNet{tiny_with("aspp")}, doctest::Contains("unknown context module 'aspp'"), Error);
    load_plugin(kAspp);
    CHECK(registration_owner("context module", "aspp") == "plugin " + kAspp);
    CHECK(describe_registry().find("  aspp  [plugin " + kAspp + "]") != std::string::npos);

    manual_seed(5);
    PSPNetConfig c = tiny_with("aspp");
    PSPNet model(c);
    std::map<std::string, Shape> shapes;
    for (auto& [name, t] : model.named_parameters()) shapes[name] = t.shape();
    // 1x1, three dilated 3x3 and the pooled 1x1 branch, 64 -> 32 channels each; the projection 5 x 32 -> 32
    CHECK(shapes["aspp.convs.0.0.weight"] == Shape{32, 64, 1, 1});
    for (const char* dilated : {"aspp.convs.1.0.weight", "aspp.convs.2.0.weight", "aspp.convs.3.0.weight"})
        CHECK(shapes[dilated] == Shape{32, 64, 3, 3});
    CHECK(shapes["aspp.convs.4.1.weight"] == Shape{32, 64, 1, 1});
    CHECK(shapes["aspp.project.0.weight"] == Shape{32, 160, 1, 1});
    CHECK(shapes["aspp.project.1.weight"] == Shape{32});
    CHECK(shapes.count("aspp.convs.0.0.bias") == 0);  // BN follows every conv
    CHECK(shapes["cls.0.weight"] == Shape{64, 32, 3, 3});
    // DeepLab's rates at output stride 8, each padded by its rate
    auto convs = child(model.context, "convs");
    for (int64_t i = 1; i <= 3; ++i) {
        auto conv = std::dynamic_pointer_cast<Conv2d>(child(child(convs, std::to_string(i)), "0"));
        REQUIRE(conv != nullptr);
        CHECK(conv->options.dilation == Size2(12 * i));
        CHECK(conv->options.padding == Size2(12 * i));
    }
    // the ASPP is trained with the heads
    size_t in_heads = 0;
    for (auto& [name, t] : model.head_parameters()) in_heads += name.rfind("aspp.", 0) == 0;
    CHECK(in_heads == 18);  // 6 units (5 branches, the projection), each a conv weight, a BN weight and bias

    auto [x, labels] = testing::overfit_batch();
    SGD opt({ParamGroup{"all", model.parameters()}}, SGDOptions{0.05f, 0.9f, 0.0f});
    float first = 0, last = 0;
    for (int step = 0; step < 15; ++step) {
        PSPNetOutput out = model.forward_all(x);
        CHECK(out.logits.shape() == Shape{2, 3, 25, 25});
        CHECK(out.aux_logits.shape() == Shape{2, 3, 25, 25});
        Tensor loss = cross_entropy(out.logits, labels) + cross_entropy(out.aux_logits, labels) * 0.4f;
        opt.zero_grad();
        loss.backward();
        if (step == 0)
            for (auto& [name, t] : model.named_parameters()) {
                if (name.rfind("aspp.", 0) != 0) continue;
                CAPTURE(name);
                REQUIRE(t.grad().defined());
                CHECK(t.grad().shape() == t.shape());
                float largest = 0;
                for (float g : t.grad().to_vector()) largest = std::max(largest, std::abs(g));
                CHECK(largest > 0);
            }
        opt.step();
        if (step == 0) first = loss.item();
        last = loss.item();
    }
    CHECK(last < 0.5f * first);

    model.eval();
    CHECK(model.forward(randn({1, 3, 17, 17})).shape() == Shape{1, 3, 17, 17});
}

TEST_CASE("context: the programs list the context modules, a plugin's with its owner, and refuse an unknown one") {
    auto listed = testing::run_program("build/bin/train --plugin " + kAspp + " --list-layers");
    CHECK(listed.code == 0);
    CHECK(listed.output.find("context modules (3):\n  aspp  [plugin " + kAspp + "]\n  none  "
                             "[models/pspnet/context.cpp]\n  ppm  [models/pspnet/context.cpp]\n") != std::string::npos);
    CHECK(listed.output.find("aspp 1.0  " + kAspp) != std::string::npos);

    // the name is checked where the model is built, after the plugins are loaded
    auto unknown = testing::run_program("build/bin/train dataset=contextscenes classes=8 scene_train=1 scene_val=1 "
                                        "context=aspx run_dir=build/test_runs/unknown_context");
    CHECK(unknown.code == 1);
    CHECK(unknown.output.find("error: unknown context module 'aspx' (config key 'context'); registered: none, ppm") !=
          std::string::npos);
}
