// A deliberately bad plugin for tests/test_plugins.cpp: a new layer, then a layer and a kernel whose names Strata's
// relu already has. The loader must refuse it whole: not even the new layer may be registered.
#include "strata.h"

namespace strata {
namespace {
std::shared_ptr<Module> make_layer(Attrs&) { return std::make_shared<Sequential>(); }
constinit KernelTable<relu_forward_fn> my_relu_forward{"relu_forward"};
void my_relu_forward_cpu(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}
}  // namespace
REGISTER_LAYER("duplicate_new_layer", make_layer);
REGISTER_LAYER("relu", make_layer);
REGISTER_KERNEL(my_relu_forward, DeviceType::CPU, my_relu_forward_cpu);
}  // namespace strata

STRATA_PLUGIN("duplicate", "1.0")
