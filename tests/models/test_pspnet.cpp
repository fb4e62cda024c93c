// PSPNet: shapes for every depth and output stride, semseg's parameter names and counts and its initialisation, the
// PPM's role, a small model overfitting one batch.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/optimizer.h"
#include "framework/random.h"
#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/pspnet.h"
#include "tests/models/tiny_model.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

PSPNetConfig tiny(int depth, int output_stride = 8) {
    PSPNetConfig c;
    c.backbone.depth = depth;
    c.backbone.width = 1.0 / 16;  // 4..32 channels: shapes without the cost
    c.backbone.output_stride = output_stride;
    c.classes = 5;
    return c;
}

// Mean, variance and largest magnitude of the weights of every Conv2d under `modules`, each weight divided by
// scale(fan_in, fan_out) of its convolution so that layers of every size pool into one sample. On the way it checks
// what both inits share: BN weight 1 and bias 0, a convolution's bias (PyTorch's default) within +-1/sqrt(fan_in).
struct Moments {
    double mean = 0, var = 0, max_abs = 0;
};
using Scale = double (*)(double fan_in, double fan_out);
void conv_moments(const Module& m, Scale scale, Moments& acc, int64_t& n) {
    for (auto& [name, child] : m.named_children()) {
        if (auto* conv = dynamic_cast<const Conv2d*>(child.get())) {
            Shape s = conv->weight.shape();
            double fan_in = double(s[1] * s[2] * s[3]), fan_out = double(s[0] * s[2] * s[3]);
            for (float w : conv->weight.to_vector()) {
                double z = w / scale(fan_in, fan_out);
                acc.mean += z, acc.var += z * z, acc.max_abs = std::max(acc.max_abs, std::abs(z)), ++n;
            }
            if (conv->bias.defined())
                for (float b : conv->bias.to_vector()) CHECK(std::abs(b) <= 1 / std::sqrt(fan_in));
        } else if (auto* bn = dynamic_cast<const BatchNorm2d*>(child.get())) {
            for (float w : bn->weight.to_vector()) CHECK(w == 1.0f);
            for (float b : bn->bias.to_vector()) CHECK(b == 0.0f);
        }
        conv_moments(*child, scale, acc, n);
    }
}
Moments moments(const std::vector<std::shared_ptr<Module>>& modules, Scale scale) {
    Moments acc;
    int64_t n = 0;
    for (auto& m : modules) conv_moments(*m, scale, acc, n);
    acc.mean /= double(n);
    acc.var = acc.var / double(n) - acc.mean * acc.mean;
    return acc;
}

}  // namespace

TEST_CASE("pspnet: output and auxiliary shapes for every depth and output stride") {
    manual_seed(0);
    for (int depth : {18, 34, 50, 101, 152}) {
        for (int os : {8, 16}) {
            CAPTURE(depth);
            CAPTURE(os);
            PSPNetConfig c = tiny(depth, os);
            if (depth > 50) c.backbone.blocks = {1, 1, 2, 1};  // the block counts change nothing shape-wise
            PSPNet model(c);
            Tensor x = randn({2, 3, 33, 33});
            PSPNetOutput out = model.forward_all(x);
            // 33 = 8*4 + 1 = 16*2 + 1: the zoom returns to the input size at output stride 8 and 16
            CHECK(out.logits.shape() == Shape{2, 5, 33, 33});
            CHECK(out.aux_logits.shape() == out.logits.shape());
            model.eval();
            PSPNetOutput ev = model.forward_all(x);
            CHECK(ev.logits.shape() == Shape{2, 5, 33, 33});
            CHECK_FALSE(ev.aux_logits.defined());  // the aux head is for training only
        }
    }
}

TEST_CASE("pspnet: semseg's initialisation: Kaiming in the backbone, PyTorch's defaults in ppm, cls and aux") {
    manual_seed(0);
    PSPNet model(tiny(50));  // about 92,000 backbone and 100,000 head weights: the tolerances are 6 sigma or more
    // semseg's ResNet: kaiming_normal_(mode='fan_out', nonlinearity='relu'), w ~ N(0, 2 / fan_out)
    Moments kaiming = moments({model.layer0, model.layer1, model.layer2, model.layer3, model.layer4},
                              [](double, double fan_out) { return std::sqrt(2 / fan_out); });
    CHECK(std::abs(kaiming.mean) < 0.02);
    CHECK(kaiming.var == doctest::Approx(1).epsilon(0.03));
    CHECK(kaiming.max_abs > 3.5);  // a normal's tail, beyond any uniform's bound
    // the new layers keep nn.Conv2d's reset_parameters: w ~ U(-b, b) with b = 1/sqrt(fan_in), variance b^2/3
    Moments uniform =
        moments({model.context, model.cls, model.aux}, [](double fan_in, double) { return 1 / std::sqrt(fan_in); });
    CHECK(std::abs(uniform.mean) < 0.015);
    CHECK(uniform.var == doctest::Approx(1.0 / 3).epsilon(0.03));
    CHECK(uniform.max_abs <= 1);
    CHECK(uniform.max_abs > 0.99);
}

TEST_CASE("pspnet: feature strides and the 8k+1 rule") {
    PSPNet model(tiny(50));
    model.eval();
    NoGradGuard g;
    Tensor x = randn({1, 3, 41, 41});
    Tensor f = model.layer2->forward(model.layer1->forward(model.layer0->forward(x)));
    CHECK(f.size(2) == 6);                                    // (41 - 1) / 8 + 1
    CHECK(model.layer4->forward(model.layer3->forward(f)).size(2) == 6);  // dilated: output stride stays 8
    CHECK(model.output_size(473) == 473);
    CHECK(model.output_size(480) == 473);  // not 8k+1: (480 - 1) / 8 * 8 + 1
    CHECK(model.forward(randn({1, 3, 40, 44})).shape() == Shape{1, 5, 33, 41});
    PSPNet os16(tiny(50, 16));
    CHECK(os16.output_size(49) == 49);
}

TEST_CASE("pspnet: parameter names and counts match semseg's PSPNet-50") {
    manual_seed(0);
    PSPNetConfig c;  // the full PSPNet-50, 21 classes
    PSPNet model(c);
    NamedTensors state = model.state_dict();
    std::map<std::string, Shape> shapes;
    for (auto& [name, t] : state) shapes[name] = t.shape();
    // datasets.md §3.3, counted with semseg's own code under torch: 370 entries, 49,081,578 parameters
    CHECK(state.size() == 370);
    CHECK(model.num_parameters() == 49081578);
    CHECK(shapes["layer0.0.weight"] == Shape{64, 3, 3, 3});
    CHECK(shapes["layer0.3.weight"] == Shape{64, 64, 3, 3});
    CHECK(shapes["layer0.6.weight"] == Shape{128, 64, 3, 3});
    CHECK(shapes["layer0.7.running_var"] == Shape{128});
    CHECK(shapes["layer0.7.num_batches_tracked"] == Shape{});
    CHECK(shapes["layer1.0.conv1.weight"] == Shape{64, 128, 1, 1});
    CHECK(shapes["layer1.0.downsample.0.weight"] == Shape{256, 128, 1, 1});
    CHECK(shapes["layer3.5.conv2.weight"] == Shape{256, 256, 3, 3});
    CHECK(shapes["layer4.2.conv3.weight"] == Shape{2048, 512, 1, 1});
    CHECK(shapes["ppm.features.3.1.weight"] == Shape{512, 2048, 1, 1});
    CHECK(shapes["ppm.features.0.2.weight"] == Shape{512});
    CHECK(shapes["cls.0.weight"] == Shape{512, 4096, 3, 3});
    CHECK(shapes["cls.4.weight"] == Shape{21, 512, 1, 1});
    CHECK(shapes["cls.4.bias"] == Shape{21});
    CHECK(shapes["aux.0.weight"] == Shape{256, 1024, 3, 3});
    CHECK(shapes["aux.4.bias"] == Shape{21});
    CHECK_FALSE(shapes.count("fc.weight"));
    // the optimizer's groups: backbone (layer0..4) and heads (ppm, cls, aux) cover every parameter once
    CHECK(model.backbone_parameters().size() + model.head_parameters().size() == model.named_parameters().size());
    for (auto& [name, t] : model.head_parameters())
        CHECK((name.rfind("ppm.", 0) == 0 || name.rfind("cls.", 0) == 0 || name.rfind("aux.", 0) == 0));
}

TEST_CASE("pspnet: the ResNet-101 layout and the torchvision stem") {
    PSPNetConfig c = tiny(101);
    PSPNet model(c);
    std::set<std::string> names;
    for (auto& [n, t] : model.state_dict()) names.insert(n);
    CHECK(names.count("layer3.22.conv3.weight"));
    CHECK_FALSE(names.count("layer3.23.conv1.weight"));
    c.backbone.deep_stem = false;
    PSPNet shallow(c);
    CHECK(shallow.layer0->named_parameters()[0].second.shape() == Shape{4, 3, 7, 7});
    CHECK(shallow.forward(randn({2, 3, 33, 33})).shape() == Shape{2, 5, 33, 33});
}

TEST_CASE("pspnet: context=none: without the PPM the classifier sees the backbone's features directly") {
    PSPNetConfig c = tiny(18);
    c.context = "none";
    PSPNet model(c);
    CHECK(model.context == nullptr);
    for (auto& [name, t] : model.named_parameters()) CHECK(name.rfind("ppm.", 0) != 0);
    CHECK(model.cls->named_parameters()[0].second.size(1) == 32);  // layer4's 512/16 channels, no concat
    CHECK(model.forward(randn({2, 3, 17, 17})).shape() == Shape{2, 5, 17, 17});
}

TEST_CASE("pspnet: stages left out keep the channel flow (small CPU variants)") {
    PSPNetConfig c = tiny(18);
    c.backbone.blocks = {1, 1, 0, 0};
    PSPNet model(c);
    CHECK(model.layer3->named_children().empty());
    CHECK(model.aux->named_parameters()[0].second.size(1) == 8);  // aux reads layer2's 128/16 channels
    CHECK(model.forward_all(randn({2, 3, 25, 25})).aux_logits.shape() == Shape{2, 5, 25, 25});
}

TEST_CASE("pspnet: bad configurations are reported") {
    PSPNetConfig c = tiny(42);
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("ResNet depth 42 is not supported"), Error);
    c = tiny(50);
    c.zoom_factor = 3;
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("zoom_factor must be 1, 2, 4 or 8"), Error);
    c = tiny(50);
    c.bins = {1, 2, 3, 5, 7};
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("not divisible by the 5 PPM bins"), Error);
    c = tiny(50);
    c.backbone.output_stride = 32;
    CHECK_THROWS_WITH_AS(PSPNet{c}, doctest::Contains("output_stride must be 8 or 16"), Error);
    PSPNet model(tiny(18));
    CHECK_THROWS_WITH_AS(model.forward(randn({1, 1, 9, 9})), doctest::Contains("input must be (N, 3, H, W)"), Error);
    // BN's bin-1 branch needs more than one value per channel in training
    CHECK_THROWS_WITH_AS(model.forward(randn({1, 3, 17, 17})), doctest::Contains("more than 1 value per channel"),
                         Error);
}

TEST_CASE("pspnet: a small model overfits one batch") {
    manual_seed(3);
    PSPNetConfig c = tiny(18);
    c.backbone.blocks = {1, 1, 1, 1};
    c.backbone.width = 0.125;
    c.classes = 3;
    c.dropout = 0;
    PSPNet model(c);
    auto [x, labels] = testing::overfit_batch();
    SGD opt({ParamGroup{"all", model.parameters()}}, SGDOptions{0.05f, 0.9f, 0.0f});
    float first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
        PSPNetOutput out = model.forward_all(x);
        Tensor loss = cross_entropy(out.logits, labels) + cross_entropy(out.aux_logits, labels) * 0.4f;
        opt.zero_grad();
        loss.backward();
        opt.step();
        if (step == 0) first = loss.item();
        last = loss.item();
    }
    CHECK(first > 1.0f);
    CHECK(last < 0.1f);
}
