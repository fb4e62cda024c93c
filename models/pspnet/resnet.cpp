// The dilated ResNet backbone (see resnet.h).
#include "models/pspnet/resnet.h"

#include <cmath>

#include "framework/check.h"
#include "framework/random.h"
#include "layers/add.h"
#include "layers/maxpool2d.h"
#include "layers/relu.h"

namespace strata::pspnet {

std::vector<int64_t> standard_blocks(int depth) {
    switch (depth) {
        case 18: return {2, 2, 2, 2};
        case 34: return {3, 4, 6, 3};
        case 50: return {3, 4, 6, 3};
        case 101: return {3, 4, 23, 3};
        case 152: return {3, 8, 36, 3};
    }
    STRATA_FAIL("ResNet depth ", depth, " is not supported; use 18, 34, 50, 101 or 152");
}

bool uses_bottleneck(int depth) { return depth >= 50; }

namespace {

std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride, int64_t dilation) {
    // padding = dilation keeps the spatial size at stride 1
    return std::make_shared<Conv2d>(in, out, 3, stride, dilation, dilation, false);
}

std::shared_ptr<Sequential> projection(int64_t in, int64_t out, int64_t stride) {
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(in, out, 1, stride, 0, 1, false), std::make_shared<BatchNorm2d>(out)});
}

int64_t scaled(int64_t channels, double width) {
    return std::max<int64_t>(1, int64_t(std::lround(double(channels) * width)));
}

}  // namespace

BasicBlock::BasicBlock(int64_t in, int64_t planes, int64_t stride, int64_t dilation) {
    conv1 = register_module("conv1", conv3x3(in, planes, stride, dilation));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2 = register_module("conv2", conv3x3(planes, planes, 1, dilation));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    if (stride != 1 || in != planes) downsample = register_module("downsample", projection(in, planes, stride));
}

// Each BN and the ReLU after it run as one fused op (batchnorm2d_relu), the last one with the shortcut added
// before its ReLU: the same values as relu(bn(conv(x)) + shortcut), with fewer passes and saved activations.
Tensor BasicBlock::forward(const Tensor& x) {
    Tensor out = bn1->forward_relu(conv1->forward(x));
    Tensor shortcut = downsample ? downsample->forward(x) : x;
    return bn2->forward_relu(conv2->forward(out), shortcut);
}

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, int64_t dilation) {
    int64_t out = planes * kExpansion;
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, planes, 1, 1, 0, 1, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2 = register_module("conv2", conv3x3(planes, planes, stride, dilation));  // the stride sits on the 3x3
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    conv3 = register_module("conv3", std::make_shared<Conv2d>(planes, out, 1, 1, 0, 1, false));
    bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(out));
    if (stride != 1 || in != out) downsample = register_module("downsample", projection(in, out, stride));
}

Tensor Bottleneck::forward(const Tensor& x) {
    Tensor out = bn1->forward_relu(conv1->forward(x));
    out = bn2->forward_relu(conv2->forward(out));
    Tensor shortcut = downsample ? downsample->forward(x) : x;
    return bn3->forward_relu(conv3->forward(out), shortcut);
}

Backbone make_backbone(const BackboneConfig& c) {
    std::vector<int64_t> blocks = c.blocks.empty() ? standard_blocks(c.depth) : c.blocks;
    STRATA_CHECK(blocks.size() == 4, "backbone: blocks must list 4 stages, got ", blocks.size());
    STRATA_CHECK(blocks[0] >= 1 && blocks[1] >= 1, "backbone: layer1 and layer2 need at least one block each "
                 "(they bring the output stride to 8)");
    for (int64_t b : blocks) STRATA_CHECK(b >= 0, "backbone: negative block count");
    STRATA_CHECK(c.output_stride == 8 || c.output_stride == 16, "backbone: output_stride must be 8 or 16, got ",
                 c.output_stride);
    STRATA_CHECK(c.width > 0, "backbone: width must be > 0, got ", c.width);
    bool bottleneck = uses_bottleneck(c.depth);
    standard_blocks(c.depth);  // validates the depth
    int64_t expansion = bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion;

    Backbone b;
    int64_t stem = scaled(64, c.width);
    if (c.deep_stem) {
        // semseg's layer0 = (conv1, bn1, relu, conv2, bn2, relu, conv3, bn3, relu, maxpool): indices 0..9
        b.layer0 = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<Conv2d>(3, stem, 3, 2, 1, 1, false), std::make_shared<BatchNorm2d>(stem),
            std::make_shared<ReLU>(),
            std::make_shared<Conv2d>(stem, stem, 3, 1, 1, 1, false), std::make_shared<BatchNorm2d>(stem),
            std::make_shared<ReLU>(),
            std::make_shared<Conv2d>(stem, 2 * stem, 3, 1, 1, 1, false), std::make_shared<BatchNorm2d>(2 * stem),
            std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(3, 2, 1)});
        stem = 2 * stem;
    } else {
        b.layer0 = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<Conv2d>(3, stem, 7, 2, 3, 1, false), std::make_shared<BatchNorm2d>(stem),
            std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(3, 2, 1)});
    }

    // (stride, dilation) per stage: layer3/4 trade stride for dilation to keep the output stride at 8 (or 16).
    const int64_t stride[4] = {1, 2, c.output_stride == 8 ? 1 : 2, 1};
    const int64_t dilation[4] = {1, 1, c.output_stride == 8 ? 2 : 1, c.output_stride == 8 ? 4 : 2};
    int64_t in = stem;
    std::shared_ptr<Sequential>* layers[4] = {&b.layer1, &b.layer2, &b.layer3, &b.layer4};
    for (int s = 0; s < 4; ++s) {
        auto layer = std::make_shared<Sequential>();
        int64_t planes = scaled(64 << s, c.width);
        for (int64_t i = 0; i < blocks[size_t(s)]; ++i) {
            int64_t st = i == 0 ? stride[s] : 1;
            if (bottleneck) layer->append(std::make_shared<Bottleneck>(in, planes, st, dilation[s]));
            else layer->append(std::make_shared<BasicBlock>(in, planes, st, dilation[s]));
            in = planes * expansion;
        }
        *layers[s] = layer;
        if (s == 2) b.layer3_channels = in;
    }
    b.layer4_channels = in;
    return b;
}

void init_backbone_weights(Module& module) {
    for (auto& [name, child] : module.named_children()) {
        if (auto* conv = dynamic_cast<Conv2d*>(child.get())) {
            // kaiming_normal_(mode='fan_out', nonlinearity='relu'): std = sqrt(2 / (out_channels * kh * kw))
            int64_t fan_out = conv->out_channels * conv->kernel_size.h * conv->kernel_size.w;
            float std = float(std::sqrt(2.0 / double(fan_out)));
            std::vector<float> v(size_t(conv->weight.numel()));
            for (float& x : v) x = std * default_generator().normal();
            conv->weight.copy_(from_vector(v, conv->weight.shape()));
        } else if (auto* bn = dynamic_cast<BatchNorm2d*>(child.get())) {
            if (bn->weight.defined()) bn->weight.fill_(1.0f);
            if (bn->bias.defined()) bn->bias.fill_(0.0f);
        }
        init_backbone_weights(*child);
    }
}

}  // namespace strata::pspnet
