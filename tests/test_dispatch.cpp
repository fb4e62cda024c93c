// Kernel tables: registration per device, and the error for a device without a kernel.
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/dispatch.h"

using namespace strata;

namespace {
using twice_fn = void (*)(float* y, const float* x, int64_t n);
constinit KernelTable<twice_fn> twice{"twice"};
void twice_cpu(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = 2 * x[i];
}
REGISTER_KERNEL(twice, DeviceType::CPU, twice_cpu);
}  // namespace

TEST_CASE("dispatch: a registered kernel is found by the tensor's device") {
    float x[2] = {1, 2}, y[2];
    twice[kCPU](y, x, 2);
    CHECK(y[1] == 4);
    CHECK(twice.has(DeviceType::CPU));
    CHECK(twice.registered() == "cpu");
}

TEST_CASE("dispatch: a missing kernel fails and lists where it exists") {
    if (twice.has(DeviceType::CUDA)) return;
    Device cuda{DeviceType::CUDA, 0};
    CHECK_THROWS_WITH_AS(twice[cuda],
                         doctest::Contains("kernel 'twice' has no cuda implementation (registered for: cpu)"), Error);
}
