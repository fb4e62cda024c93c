// A deliberately bad plugin for tests/test_plugins.cpp: registers a layer but has no STRATA_PLUGIN entry point.
#include "strata.h"

namespace {
std::shared_ptr<strata::Module> make_layer(strata::Attrs&) { return std::make_shared<strata::Sequential>(); }
}  // namespace
REGISTER_LAYER("no_entry_layer", make_layer);
