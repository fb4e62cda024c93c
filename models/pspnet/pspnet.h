// PSPNet (Zhao et al., CVPR 2017) as hszhao/semseg implements it (model/pspnet.py).
//
//   x (N,3,H,W) ─ layer0..layer2 ─ layer3 ──────────────────────────── aux head ─ x8 ─> aux logits (training only)
//                                     └─ layer4 ─ PPM ─ cls head ─ x8 bilinear ─> logits (N,classes,H',W')
//
// PPM (pyramid pooling module), for each bin b in (1, 2, 3, 6): adaptive average pooling to b x b, 1x1 conv to
// in/len(bins) channels (no bias), BN, ReLU, bilinear upsampling back to the feature size (align_corners=True);
// the four maps are concatenated with the input (2048 + 4*512 = 4096 channels for ResNet-50). The pooled maps carry
// the global context that a convolution's receptive field does not reach: that is the paper's point.
//
// cls: 3x3 conv to 512 (no bias), BN, ReLU, Dropout2d(0.1), 1x1 conv to the classes (with bias).
// aux: the same on layer3 with 256 hidden channels; its loss is weighted 0.4.
// The logits are upsampled by zoom_factor (8) with align_corners=True, so an input of size 8k+1 gives an output
// of exactly the input size ((H-1)/8*8+1 = H); other sizes work and give (H-1)/8*8+1 rounded down
// (see docs/pspnet.md).
//
// Parameter names: layer0..layer4 (resnet.h), ppm.features.{i}.{1 conv, 2 BN}, cls.{0,1,4}, aux.{0,1,4}: semseg's.
#pragma once

#include <memory>
#include <vector>

#include "framework/module.h"
#include "models/pspnet/resnet.h"

namespace strata::pspnet {

struct PSPNetConfig {
    BackboneConfig backbone;
    int64_t classes = 21;
    bool use_ppm = true;                      // false: the dilated FCN baseline (the paper's ablation)
    std::vector<int64_t> bins = {1, 2, 3, 6};  // the pyramid's bin sizes
    double dropout = 0.1;
    int64_t zoom_factor = 8;                  // 1, 2, 4 or 8
    double aux_weight = 0.4;                  // the auxiliary loss's weight; > 0 builds the aux head (training only)
};

class PPM : public Module {
public:
    PPM(int64_t in_channels, int64_t reduction_channels, const std::vector<int64_t>& bins);
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "PPM"; }
    int64_t out_channels() const { return out_channels_; }

private:
    std::shared_ptr<Module> features_;
    int64_t out_channels_;
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

    // Parameter groups for SGD: the backbone at the base LR, the heads (ppm, cls, aux) at head_lr_mult x base.
    NamedTensors backbone_parameters() const;
    NamedTensors head_parameters() const;

    std::shared_ptr<Sequential> layer0, layer1, layer2, layer3, layer4, cls, aux;
    std::shared_ptr<PPM> ppm;

private:
    PSPNetConfig config_;
};

}  // namespace strata::pspnet
