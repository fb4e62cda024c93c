// aspp: DeepLab v3's atrous spatial pyramid pooling (Chen et al., 2017, §3.3) as a PSPNet context module, the
// example of a plugin that supplies a model part (docs/plugins.md). One file, composed from existing ops:
//
//   make plugin SRC=plugins/examples/aspp.cpp        -> build/plugins/aspp.so
//   make train ARGS="context=aspp plugins=[build/plugins/aspp.so] run_dir=runs/aspp"
//
//   x (N,C,h,w) ─┬─ 1x1 conv ────────────────────────── BN ─ ReLU ─┐
//                ├─ 3x3 conv, dilation r1 ──────────── BN ─ ReLU ─┤
//                ├─ 3x3 conv, dilation r2 ──────────── BN ─ ReLU ─┼─ concat (5D) ─ 1x1 conv ─ BN ─ ReLU ─> (N,D,h,w)
//                ├─ 3x3 conv, dilation r3 ──────────── BN ─ ReLU ─┤
//                └─ global avg pool ─ 1x1 conv ─ BN ─ ReLU ─ up ──┘
//
// D = 256 channels per branch, as DeepLab (times the backbone's `width`, like PSPNet's heads). Every conv has no bias
// (BN follows). The dilated 3x3 convs are padded by their dilation, so every branch keeps the h x w size. The image
// pooling branch is DeepLab v3's answer to dilated filters on small maps: as the rate nears the feature map's size,
// fewer of a 3x3 filter's taps fall inside the map, until only the centre one is left and the branch is a 1x1 conv;
// the pooled branch gives every position the whole image's features. torchvision's parameter names
// (convs.{0..4}, project): aspp.convs.1.0.weight is the first dilated conv's weight.
//
// NOTE: torchvision's ASPP ends with Dropout(0.5); PSPNet's classifier already starts with its own dropout
// (config key dropout), so this module has none.
#include "models/pspnet/pspnet.h"
#include "strata.h"

namespace strata {

namespace {

// DeepLab v3's rates: (6, 12, 18) at output stride 16 and twice those, (12, 24, 36), at output stride 8, chosen for
// 513 x 513 crops (a 65 x 65 feature map at stride 8). The `make train` model's 113 x 113 crops give a 15 x 15 map,
// where these rates leave each dilated branch mostly its centre tap (see above) and the image pooling carries the
// context; we keep DeepLab's rates rather than tune them to one small dataset.
std::vector<int64_t> aspp_rates(int output_stride) {
    return output_stride == 16 ? std::vector<int64_t>{6, 12, 18} : std::vector<int64_t>{12, 24, 36};
}

// conv (no bias) -> BN -> ReLU, DeepLab's unit, after `first` when given; padding = dilation keeps a 3x3 conv's
// output size.
std::shared_ptr<Sequential> conv_bn_relu(int64_t in, int64_t out, int64_t kernel, int64_t dilation,
                                         std::shared_ptr<Module> first = nullptr) {
    int64_t padding = kernel == 3 ? dilation : 0;
    auto unit = std::make_shared<Sequential>();
    if (first) unit->append(first);
    unit->append(std::make_shared<Conv2d>(in, out, kernel, 1, padding, dilation, false));
    unit->append(std::make_shared<BatchNorm2d>(out));
    unit->append(std::make_shared<ReLU>());
    return unit;
}

class ASPP : public Module {
public:
    ASPP(int64_t in_channels, int64_t channels, const std::vector<int64_t>& rates) : channels_(channels) {
        auto convs = std::make_shared<Sequential>();  // used as a list: its children are the branches
        convs->append(conv_bn_relu(in_channels, channels, 1, 1));
        for (int64_t rate : rates) convs->append(conv_bn_relu(in_channels, channels, 3, rate));
        pooling_ = conv_bn_relu(in_channels, channels, 1, 1, std::make_shared<AdaptiveAvgPool2d>(Size2(1)));
        convs->append(pooling_);
        convs_ = register_module("convs", convs);
        int64_t branches = int64_t(rates.size()) + 2;
        project_ = register_module("project", conv_bn_relu(branches * channels, channels, 1, 1));
    }

    Tensor forward(const Tensor& x) override {
        Size2 size(x.size(2), x.size(3));
        std::vector<Tensor> parts;
        for (auto& [name, branch] : convs_->named_children()) {
            Tensor y = branch->forward(x);
            // the pooled branch is 1 x 1: bilinear upsampling from one cell repeats it over the map
            parts.push_back(branch == pooling_ ? upsample_bilinear2d(y, size, true) : y);
        }
        return project_->forward(concat(parts, 1));
    }

    std::string type_name() const override { return "ASPP"; }
    int64_t out_channels() const { return channels_; }

private:
    std::shared_ptr<Module> convs_, pooling_, project_;
    int64_t channels_;
};

pspnet::ContextModule make_aspp(int64_t in_channels, const pspnet::PSPNetConfig& config) {
    int64_t channels = std::max<int64_t>(1, int64_t(std::lround(256 * config.backbone.width)));
    auto aspp = std::make_shared<ASPP>(in_channels, channels, aspp_rates(config.backbone.output_stride));
    return {aspp, aspp->out_channels()};
}

}  // namespace

REGISTER_CONTEXT("aspp", make_aspp);

}  // namespace strata

STRATA_PLUGIN("aspp", "1.0")
