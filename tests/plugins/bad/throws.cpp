// A deliberately bad plugin for tests/test_plugins.cpp: its entry point throws (as a plugin that finds it cannot
// work here should), after its registrar staged a layer.
#include <stdexcept>

#include "strata.h"

namespace {
std::shared_ptr<strata::Module> make_layer(strata::Attrs&) { return std::make_shared<strata::Sequential>(); }
}  // namespace
REGISTER_LAYER("throws_layer", make_layer);

extern "C" __attribute__((visibility("default"))) void strata_plugin(StrataPluginInfo*) {
    throw std::runtime_error("this plugin needs the XYZ accelerator library, which is not installed");
}
