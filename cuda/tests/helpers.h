// Helpers for the backend tests in cuda/tests/ (plain C++ against the Strata API, built into both the emulated
// and the real CUDA test program).
#pragma once

#include "framework/device.h"
#include "tests/skip.h"

namespace strata {

inline const Device kCuda0{DeviceType::CUDA, 0};

// Whether this program has a CUDA backend with at least one device.
inline bool cuda_usable() {
    return has_backend(DeviceType::CUDA) && backend(DeviceType::CUDA).device_count() > 0;
}

// The backend tests start with `if (skip_unless_cuda()) return;`: without a device (the real program on a machine
// without a GPU; link_check.cu prints the one line saying so) the case is counted as skipped, not passed.
inline bool skip_unless_cuda() {
    if (cuda_usable()) return false;
    testing::skip_test_case();
    return true;
}

}  // namespace strata
