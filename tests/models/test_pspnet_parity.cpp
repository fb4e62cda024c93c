// The whole PSPNet against an independent PyTorch implementation of semseg's PSPNet-50 (tests/fixtures/gen_pspnet.py,
// at 1/32 width): the state_dict loads name for name, eval-mode logits agree, and a training-mode step (dropout 0)
// gives the same loss, parameter gradients and BN running statistics. This checks the architecture end to end:
// the deep stem, the stride on the 3x3, the dilations, the PPM's bins and align_corners, the heads, the zoom.
#include <doctest/doctest.h>

#include <cmath>

#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/pspnet.h"
#include "tests/fixtures.h"

using namespace strata;
using namespace strata::pspnet;
using namespace strata::testing;

namespace {

PSPNet reference_model(const SafetensorsFile& fx, double dropout) {
    nlohmann::json p = fixture_params(fx, "w32");
    PSPNetConfig c;
    c.backbone.depth = p["depth"];
    c.backbone.width = p["width"];
    c.classes = p["classes"];
    c.dropout = dropout;
    PSPNet model(c);
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : fx.tensors)
        if (name.rfind("state.", 0) == 0) state[name.substr(6)] = t;
    model.load_state_dict(state, true);  // strict: every name and shape matches semseg's
    return model;
}

}  // namespace

TEST_CASE("pspnet parity: eval-mode logits match PyTorch") {
    SafetensorsFile fx = load_fixture("pspnet");
    PSPNet model = reference_model(fx, 0.1);
    model.eval();
    Tensor logits = model.forward(fx.get("eval.x"));
    check_close(logits, fx.get("eval.logits"), 2e-4, 2e-3, "eval logits");
}

TEST_CASE("pspnet parity: a training step's loss, gradients and BN statistics match PyTorch") {
    SafetensorsFile fx = load_fixture("pspnet");
    PSPNet model = reference_model(fx, 0.0);
    model.train();
    PSPNetOutput out = model.forward_all(fx.get("eval.x"));
    Tensor label = fx.get("train.label");
    Tensor loss = cross_entropy(out.logits, label) + cross_entropy(out.aux_logits, label) * 0.4f;
    CHECK(loss.item() == doctest::Approx(fx.get("train.loss").item()).epsilon(1e-4));
    loss.backward();
    std::map<std::string, Tensor> params;
    for (auto& [name, t] : model.named_parameters()) params[name] = t;
    std::map<std::string, Tensor> buffers;
    for (auto& [name, t] : model.named_buffers()) buffers[name] = t;
    for (auto& [name, t] : fx.tensors) {
        if (name.rfind("grad.", 0) == 0) {
            std::string p = name.substr(5);
            REQUIRE_MESSAGE(params.count(p), p);
            // float32 through ~60 layers with batch statistics: an absolute tolerance of 1e-4 of the tensor's
            // largest gradient (small entries are differences of large terms), 0.2% relative
            double scale = 0;
            for (float v : t.to_vector()) scale = std::max(scale, double(std::abs(v)));
            check_close(params[p].grad(), t, 1e-4 * scale, 2e-3, "gradient of " + p);
        } else if (name.rfind("after.", 0) == 0) {
            std::string b = name.substr(6);
            check_close(buffers[b], t, 1e-5, 1e-4, "running statistic " + b);
        }
    }
}
