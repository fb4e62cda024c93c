// PSPNet: backbone + context module (pyramid pooling) + classifier + auxiliary head (see pspnet.h).
#include "models/pspnet/pspnet.h"

#include <cmath>

#include "framework/check.h"
#include "layers/dropout2d.h"
#include "layers/relu.h"
#include "layers/upsample_bilinear2d.h"

namespace strata::pspnet {

namespace {

// conv3x3 -> BN -> ReLU -> Dropout2d -> conv1x1: semseg's cls and aux heads (children 0..4).
std::shared_ptr<Sequential> head(int64_t in, int64_t hidden, int64_t classes, double dropout) {
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(in, hidden, 3, 1, 1, 1, false), std::make_shared<BatchNorm2d>(hidden),
        std::make_shared<ReLU>(), std::make_shared<Dropout2d>(float(dropout)),
        std::make_shared<Conv2d>(hidden, classes, 1, 1, 0, 1, true)});
}

int64_t scaled(int64_t channels, double width) {
    return std::max<int64_t>(1, int64_t(std::lround(double(channels) * width)));
}

}  // namespace

PSPNet::PSPNet(const PSPNetConfig& c) : config_(c) {
    STRATA_CHECK(c.classes >= 1, "PSPNet: classes must be >= 1, got ", c.classes);
    STRATA_CHECK(c.zoom_factor == 1 || c.zoom_factor == 2 || c.zoom_factor == 4 || c.zoom_factor == 8,
                 "PSPNet: zoom_factor must be 1, 2, 4 or 8, got ", c.zoom_factor);
    STRATA_CHECK(c.dropout >= 0 && c.dropout < 1, "PSPNet: dropout must be in [0, 1), got ", c.dropout);
    // semseg's ResNet initialises its own layers (Kaiming); PSPNet's new layers (context, cls, aux) keep PyTorch's
    // defaults, which Conv2d and BatchNorm2d already give: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BN weight 1, bias 0.
    Backbone b = make_backbone(c.backbone);
    for (Module* stage : {b.layer0.get(), b.layer1.get(), b.layer2.get(), b.layer3.get(), b.layer4.get()})
        init_backbone_weights(*stage);
    layer0 = register_module("layer0", b.layer0);
    layer1 = register_module("layer1", b.layer1);
    layer2 = register_module("layer2", b.layer2);
    layer3 = register_module("layer3", b.layer3);
    layer4 = register_module("layer4", b.layer4);

    int64_t features = b.layer4_channels;
    ContextModule made = create_context(c.context, features, c);
    if (made.module) context = register_module(c.context, made.module);
    features = made.out_channels;
    double width = c.backbone.width;
    cls = register_module("cls", head(features, scaled(512, width), c.classes, c.dropout));
    if (c.aux_weight > 0) aux = register_module("aux", head(b.layer3_channels, scaled(256, width), c.classes, c.dropout));
    fuse_batchnorm_relu(*this);  // the stem's, the context module's and the heads' BN + ReLU pairs, one op each
}

int64_t PSPNet::output_size(int64_t input) const {
    int64_t os = config_.backbone.output_stride;
    return (input - 1) / os * config_.zoom_factor * os / 8 + 1;
}

PSPNetOutput PSPNet::forward_all(const Tensor& x) {
    STRATA_CHECK(x.dim() == 4 && x.size(1) == 3, "PSPNet: input must be (N, 3, H, W), got ", x.shape_string());
    int64_t h = output_size(x.size(2)), w = output_size(x.size(3));

    Tensor f = layer1->forward(layer0->forward(x));
    f = layer2->forward(f);
    Tensor f3 = layer3->forward(f);
    Tensor f4 = layer4->forward(f3);
    if (context) f4 = context->forward(f4);

    PSPNetOutput out;
    out.logits = cls->forward(f4);
    if (config_.zoom_factor != 1) out.logits = upsample_bilinear2d(out.logits, Size2(h, w), true);
    if (aux && is_training()) {
        out.aux_logits = aux->forward(f3);
        if (config_.zoom_factor != 1) out.aux_logits = upsample_bilinear2d(out.aux_logits, Size2(h, w), true);
    }
    return out;
}

NamedTensors PSPNet::backbone_parameters() const {
    NamedTensors out;
    for (auto& [name, t] : named_parameters())
        if (name.rfind("layer", 0) == 0) out.emplace_back(name, t);
    return out;
}

NamedTensors PSPNet::head_parameters() const {
    NamedTensors out;
    for (auto& [name, t] : named_parameters())
        if (name.rfind("layer", 0) != 0) out.emplace_back(name, t);
    return out;
}

}  // namespace strata::pspnet
