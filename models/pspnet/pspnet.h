// PSPNet (Zhao et al., CVPR 2017) as hszhao/semseg implements it (model/pspnet.py).
//
//   x (N,3,H,W) ─ layer0..layer2 ─ layer3 ──────────────────────────── aux head ─ x8 ─> aux logits (training only)
//                                     └─ layer4 ─ context (PPM) ─ cls head ─ x8 bilinear ─> logits (N,classes,H',W')
//
// The context module between layer4 and the classifier is chosen by name (config key `context`, context.h): "ppm",
// the pyramid pooling module (the paper's model, the default), "none" (the dilated FCN of the paper's ablation), or
// one a plugin registers (plugins/examples/aspp.cpp: DeepLab v3's ASPP).
//
// cls: 3x3 conv to 512 (no bias), BN, ReLU, Dropout2d(0.1), 1x1 conv to the classes (with bias).
// aux: the same on layer3 with 256 hidden channels; its loss is weighted 0.4.
// The logits are upsampled by zoom_factor (8) with align_corners=True, so an input of size 8k+1 gives an output
// of exactly the input size ((H-1)/8*8+1 = H); other sizes work and give (H-1)/8*8+1 rounded down
// (see docs/pspnet.md).
//
// Parameter names: layer0..layer4 (resnet.h), ppm.features.{i}.{1 conv, 2 BN}, cls.{0,1,4}, aux.{0,1,4}: semseg's.
// Another context module's parameters are named after it (aspp.convs.0.0.weight).
#pragma once

#include <memory>
#include <vector>

#include "framework/module.h"
#include "models/pspnet/context.h"
#include "models/pspnet/resnet.h"

namespace strata::pspnet {

struct PSPNetConfig {
    BackboneConfig backbone;
    int64_t classes = 21;
    std::string context = "ppm";              // the context module's registered name; "none": the dilated FCN
    std::vector<int64_t> bins = {1, 2, 3, 6};  // the pyramid's bin sizes
    double dropout = 0.1;
    int64_t zoom_factor = 8;                  // 1, 2, 4 or 8
    double aux_weight = 0.4;                  // the auxiliary loss's weight; > 0 builds the aux head (training only)
};

struct PSPNetOutput {
    Tensor logits;      // (N, classes, h, w)
    Tensor aux_logits;  // same shape; undefined in eval mode or without the aux head
};

class PSPNet : public Module {
public:
    explicit PSPNet(const PSPNetConfig& config);
    PSPNetOutput forward_all(const Tensor& x);
    Tensor forward(const Tensor& x) override { return forward_all(x).logits; }
    std::string type_name() const override { return "PSPNet"; }
    const PSPNetConfig& config() const { return config_; }
    // The output size for an input size: (in - 1) / 8 * zoom + 1 at output stride 8.
    int64_t output_size(int64_t input_size) const;

    // Parameter groups for SGD: the backbone at the base LR, the heads (context, cls, aux) at head_lr_mult x base.
    NamedTensors backbone_parameters() const;
    NamedTensors head_parameters() const;

    std::shared_ptr<Sequential> layer0, layer1, layer2, layer3, layer4, cls, aux;
    std::shared_ptr<Module> context;  // registered under config.context ("ppm"); nullptr for "none"

private:
    PSPNetConfig config_;
};

}  // namespace strata::pspnet
