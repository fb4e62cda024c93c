// The dilated ResNet backbone of PSPNet, as hszhao/semseg builds it (model/resnet.py + the dilation surgery in
// model/pspnet.py).
//
//   layer0  deep stem: conv3x3(3->w, s2) BN ReLU, conv3x3(w->w) BN ReLU, conv3x3(w->2w) BN ReLU, maxpool 3x3 s2
//           (or the torchvision stem: conv7x7(3->w, s2) BN ReLU, maxpool 3x3 s2)
//   layer1  blocks at stride 1           output stride 4
//   layer2  first block at stride 2      output stride 8
//   layer3  stride 1, every 3x3 dilated 2 (output stride 8)   or stride 2, no dilation (output stride 16)
//   layer4  stride 1, every 3x3 dilated 4 (output stride 8)   or stride 1, dilation 2   (output stride 16)
//
// Depths 18 and 34 use BasicBlock (two 3x3 convs), 50/101/152 Bottleneck (1x1 reduce, 3x3 with the stride and
// dilation, 1x1 expand x4). A block whose input and output differ in shape has a projection shortcut
// `downsample` = 1x1 conv with the block's stride + BN. Every conv has no bias and is followed by BN.
//
// Parameter names are semseg's (layer0.0.weight, layer1.0.conv1.weight, layer1.0.downsample.0.weight, ...), so a
// semseg checkpoint maps one to one after stripping its `module.` prefix.
#pragma once

#include <memory>
#include <vector>

#include "framework/module.h"
#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"

namespace strata::pspnet {

struct BackboneConfig {
    int depth = 50;                   // 18, 34, 50, 101, 152
    std::vector<int64_t> blocks;      // blocks per stage; empty: the standard counts for `depth`. A stage with 0
                                      // blocks is skipped (identity): small CPU variants use this to keep the
                                      // receptive field small
    double width = 1.0;               // multiplies every channel count (base widths 64, 128, 256, 512)
    bool deep_stem = true;            // semseg's three 3x3 convs; false: torchvision's 7x7
    int output_stride = 8;            // 8 or 16
};

// Standard block counts: 18 [2,2,2,2], 34 [3,4,6,3], 50 [3,4,6,3], 101 [3,4,23,3], 152 [3,8,36,3].
std::vector<int64_t> standard_blocks(int depth);
bool uses_bottleneck(int depth);

class BasicBlock : public Module {
public:
    static constexpr int64_t kExpansion = 1;
    BasicBlock(int64_t in_channels, int64_t planes, int64_t stride, int64_t dilation);
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "BasicBlock"; }

    std::shared_ptr<Conv2d> conv1, conv2;
    std::shared_ptr<BatchNorm2d> bn1, bn2;
    std::shared_ptr<Sequential> downsample;  // null when the shortcut is the identity
};

class Bottleneck : public Module {
public:
    static constexpr int64_t kExpansion = 4;
    Bottleneck(int64_t in_channels, int64_t planes, int64_t stride, int64_t dilation);
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Bottleneck"; }

    std::shared_ptr<Conv2d> conv1, conv2, conv3;
    std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
    std::shared_ptr<Sequential> downsample;
};

// The stages of the backbone, to be registered by the owner (PSPNet registers them as its own layer0..layer4,
// which is how semseg names them).
struct Backbone {
    std::shared_ptr<Sequential> layer0, layer1, layer2, layer3, layer4;
    int64_t layer3_channels = 0;  // input of the auxiliary head
    int64_t layer4_channels = 0;  // input of the pyramid pooling module
};

Backbone make_backbone(const BackboneConfig& config);

// Kaiming-normal (fan_out, ReLU gain) for convolutions, BN weight 1 and bias 0: semseg's ResNet init.
void init_backbone_weights(Module& module);

}  // namespace strata::pspnet
