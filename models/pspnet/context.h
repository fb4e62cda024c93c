// Context modules: what PSPNet puts between the backbone and the classifier, chosen by name (config key `context`).
//
//     x (N, in_channels, h, w) ─ context module ─> (N, out_channels, h, w) ─ cls head
//
// Registered here: "ppm", the pyramid pooling module (the default, the paper's model), and "none", nothing at all
// (the dilated-FCN baseline of the paper's ablation). A plugin adds another from its own file, e.g. DeepLab v3's
// ASPP (plugins/examples/aspp.cpp, docs/plugins.md):
//
//     ContextModule make_mine(int64_t in_channels, const PSPNetConfig& config) { ...; return {module, out}; }
//     REGISTER_CONTEXT("mine", make_mine);
//
// and `context=mine plugins=[build/plugins/mine.so]` trains PSPNet with it. The factory gets the backbone's output
// channel count (2048 for ResNet-50, times `width`) and the whole model config (bins, dropout, width, ...); it
// returns the module (nullptr: the identity) and the channel count the classifier receives. The module's parameters
// are named after the context ("ppm.features.0.1.weight") and trained at the heads' learning rate.
//
// Registrations go through framework/registration.h as kind "context module": a name taken twice is an error
// naming both owners, and a plugin's registrations are staged until it passed its checks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "framework/dispatch.h"  // STRATA_CONCAT
#include "framework/module.h"

namespace strata::pspnet {

struct PSPNetConfig;

struct ContextModule {
    std::shared_ptr<Module> module;  // nullptr: the features go to the classifier unchanged
    int64_t out_channels = 0;        // the channels the classifier receives
};

using ContextFactory = ContextModule (*)(int64_t in_channels, const PSPNetConfig& config);

// A name used by a model must be a lower-case identifier ([a-z][a-z0-9_]*) that PSPNet does not use itself (cls,
// aux, layer*): it becomes the prefix of the module's parameter names.
void register_context(const std::string& name, ContextFactory factory, const std::string& owner);
// The module `name` builds; an unknown name is an error listing the registered ones.
ContextModule create_context(const std::string& name, int64_t in_channels, const PSPNetConfig& config);
std::vector<std::string> context_names();  // sorted
bool has_context(const std::string& name);

struct ContextRegistrar {
    ContextRegistrar(const char* name, ContextFactory factory, const char* file);
};

// PPM (pyramid pooling module), for each bin b in (1, 2, 3, 6): adaptive average pooling to b x b, 1x1 conv to
// in/len(bins) channels (no bias), BN, ReLU, bilinear upsampling back to the feature size (align_corners=True);
// the four maps are concatenated with the input (2048 + 4*512 = 4096 channels for ResNet-50). The pooled maps carry
// the global context that a convolution's receptive field does not reach: that is the paper's point.
// Parameter names: features.{i}.{1 conv, 2 BN}, semseg's.
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

}  // namespace strata::pspnet

#define REGISTER_CONTEXT(name, factory)                                                                         \
    static ::strata::pspnet::ContextRegistrar STRATA_CONCAT(context_registrar_, __LINE__)(name, factory, \
                                                                                          __FILE__)
