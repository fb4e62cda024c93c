// The context module registry, and the two modules PSPNet itself brings: ppm and none (see context.h).
#include "models/pspnet/context.h"

#include <map>
#include <regex>

#include "framework/check.h"
#include "framework/registration.h"
#include "layers/adaptive_avg_pool2d.h"
#include "layers/batchnorm2d.h"
#include "layers/concat.h"
#include "layers/conv2d.h"
#include "layers/relu.h"
#include "layers/upsample_bilinear2d.h"
#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

namespace {

const char* kKind = "context module";

std::map<std::string, ContextFactory>& registry() {
    static std::map<std::string, ContextFactory> map;  // a function-local static: built before any registrar uses it
    return map;
}

// Checked where the module is built rather than where it is registered: a registrar in a plugin has no one to
// report to, and a name that is never used harms nothing.
void check_name(const std::string& name) {
    bool identifier = std::regex_match(name, std::regex("[a-z][a-z0-9_]*"));
    bool taken = name == "cls" || name == "aux" || name.rfind("layer", 0) == 0;
    STRATA_CHECK(identifier && !taken, "context module name '", name, "' is not allowed: it becomes the prefix of the "
                 "module's parameter names, so it must be a lower-case identifier ([a-z][a-z0-9_]*) other than cls, "
                 "aux and layer*, e.g. \"aspp\"");
}

std::string names_list() {
    std::string list;
    for (const std::string& n : context_names()) list += (list.empty() ? "" : ", ") + n;
    return list;
}

}  // namespace

void register_context(const std::string& name, ContextFactory factory, const std::string& owner) {
    add_registration(kKind, name, owner, [name, factory] { registry()[name] = factory; });
}

ContextRegistrar::ContextRegistrar(const char* name, ContextFactory factory, const char* file) {
    add_registration_or_exit(kKind, name, file, [name = std::string(name), factory] { registry()[name] = factory; });
}

bool has_context(const std::string& name) { return registry().count(name) > 0; }

std::vector<std::string> context_names() {
    std::vector<std::string> names;
    for (auto& [name, f] : registry()) names.push_back(name);
    return names;
}

ContextModule create_context(const std::string& name, int64_t in_channels, const PSPNetConfig& config) {
    check_name(name);
    auto it = registry().find(name);
    STRATA_CHECK(it != registry().end(), "unknown context module '", name, "' (config key 'context'); registered: ",
                 names_list(), ". A plugin's module is registered when the plugin is loaded: add it with "
                 "plugins=[path/to/plugin.so] or --plugin path/to/plugin.so (--list-layers lists them)");
    ContextModule m = it->second(in_channels, config);
    STRATA_CHECK(m.out_channels >= 1, "context module '", name, "' (", registration_owner(kKind, name),
                 ") gave ", m.out_channels, " output channels; its factory must return at least 1");
    return m;
}

PPM::PPM(int64_t in_channels, int64_t reduction, const std::vector<int64_t>& bins) {
    auto features = std::make_shared<Sequential>();  // used as a list: its children are the branches
    for (int64_t bin : bins) {
        STRATA_CHECK(bin >= 1, "PPM: bins must be >= 1, got ", bin);
        features->append(std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<AdaptiveAvgPool2d>(Size2(bin)),
            std::make_shared<Conv2d>(in_channels, reduction, 1, 1, 0, 1, false),
            std::make_shared<BatchNorm2d>(reduction), std::make_shared<ReLU>()}));
    }
    features_ = register_module("features", features);
    out_channels_ = in_channels + reduction * int64_t(bins.size());
}

Tensor PPM::forward(const Tensor& x) {
    Size2 size(x.size(2), x.size(3));
    std::vector<Tensor> parts = {x};
    for (auto& [name, branch] : features_->named_children())
        parts.push_back(upsample_bilinear2d(branch->forward(x), size, true));
    return concat(parts, 1);
}

namespace {

ContextModule make_ppm(int64_t in_channels, const PSPNetConfig& c) {
    int64_t n = int64_t(c.bins.size());
    STRATA_CHECK(n > 0, "PSPNet: context=ppm needs at least one bin (bins=[1,2,3,6])");
    STRATA_CHECK(in_channels % n == 0, "PSPNet: the backbone's ", in_channels, " output channels are not divisible "
                 "by the ", n, " PPM bins");
    auto ppm = std::make_shared<PPM>(in_channels, in_channels / n, c.bins);
    return {ppm, ppm->out_channels()};
}

// The paper's ablation: the classifier reads the dilated backbone's features directly.
ContextModule make_none(int64_t in_channels, const PSPNetConfig&) { return {nullptr, in_channels}; }

}  // namespace

REGISTER_CONTEXT("ppm", make_ppm);
REGISTER_CONTEXT("none", make_none);

}  // namespace strata::pspnet
