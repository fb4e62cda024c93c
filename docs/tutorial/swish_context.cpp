// swish_context: a PSPNet context module that uses the swish layer by name, the model part of
// docs/adding_a_layer.md. A plugin of its own, so that it works with swish in the tree or as a plugin:
//
//   x (N,C,h,w) ─┬──────────────────────────────────────────────┐
//                └─ global avg pool ─ 1x1 conv ─ swish ─ up ─────┴─ concat (C+D) ─ 1x1 conv ─ BN ─ swish ─> (N,D,h,w)
//
// D = 256 channels times the backbone's `width`, like PSPNet's heads. The pooled branch gives every position the
// whole image's features, the context a convolution's receptive field does not reach.
#include "models/pspnet/pspnet.h"
#include "strata.h"

namespace strata {

namespace {

class SwishContext : public Module {
public:
    SwishContext(int64_t in_channels, int64_t channels) : channels_(channels) {
        auto pool = std::make_shared<Sequential>();
        pool->append(std::make_shared<AdaptiveAvgPool2d>(Size2(1)));
        pool->append(std::make_shared<Conv2d>(in_channels, channels, 1, 1, 0, 1, true));
        pool->append(create_layer("swish"));  // by name: "unknown layer 'swish'" until its plugin is loaded
        pool_ = register_module("pool", pool);
        auto project = std::make_shared<Sequential>();
        project->append(std::make_shared<Conv2d>(in_channels + channels, channels, 1, 1, 0, 1, false));
        project->append(std::make_shared<BatchNorm2d>(channels));
        project->append(create_layer("swish"));
        project_ = register_module("project", project);
    }

    Tensor forward(const Tensor& x) override {
        Tensor pooled = upsample_bilinear2d(pool_->forward(x), Size2(x.size(2), x.size(3)), true);
        return project_->forward(concat({x, pooled}, 1));
    }

    std::string type_name() const override { return "SwishContext"; }
    int64_t out_channels() const { return channels_; }

private:
    std::shared_ptr<Module> pool_, project_;
    int64_t channels_;
};

pspnet::ContextModule make_swish_context(int64_t in_channels, const pspnet::PSPNetConfig& config) {
    int64_t channels = std::max<int64_t>(1, int64_t(std::lround(256 * config.backbone.width)));
    auto context = std::make_shared<SwishContext>(in_channels, channels);
    return {context, context->out_channels()};
}

}  // namespace

REGISTER_CONTEXT("swish_context", make_swish_context);

}  // namespace strata

STRATA_PLUGIN("swish_context", "1.0")
