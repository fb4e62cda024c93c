// A deliberately bad plugin for tests/test_plugins.cpp: claims another compiler, C++ library and Strata version.
#include "strata.h"

namespace {
std::shared_ptr<strata::Module> make_layer(strata::Attrs&) { return std::make_shared<strata::Sequential>(); }
}  // namespace
REGISTER_LAYER("bad_fingerprint_layer", make_layer);

extern "C" __attribute__((visibility("default"))) void strata_plugin(StrataPluginInfo* info) {
    info->abi_version = STRATA_PLUGIN_ABI;
    info->struct_size = sizeof(StrataPluginInfo);
    info->name = "bad_fingerprint";
    info->version = "1.0";
    info->fingerprint = "strata 0.1.0; gcc 4.8.5; libstdc++ 20150623 cxx11-abi=0";
}
