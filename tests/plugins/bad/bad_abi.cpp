// A deliberately bad plugin for tests/test_plugins.cpp: built for another plugin ABI. Its layer must not be
// registered when the loader refuses it.
#include "strata.h"

namespace {
std::shared_ptr<strata::Module> make_layer(strata::Attrs&) { return std::make_shared<strata::Sequential>(); }
}  // namespace
REGISTER_LAYER("bad_abi_layer", make_layer);

extern "C" __attribute__((visibility("default"))) void strata_plugin(StrataPluginInfo* info) {
    info->abi_version = STRATA_PLUGIN_ABI + 1;
    info->struct_size = sizeof(StrataPluginInfo) + 8;
    info->name = "bad_abi";
    info->version = "1.0";
    info->fingerprint = STRATA_BUILD_FINGERPRINT;
}
