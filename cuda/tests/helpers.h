// Helpers for the backend tests in cuda/tests/ (plain C++ against the Strata API, built into both the emulated
// and the real CUDA test program).
#pragma once

#include "framework/device.h"

namespace strata {

inline const Device kCuda0{DeviceType::CUDA, 0};

// Whether this program has a CUDA backend with at least one device. The backend tests return early when it has
// not: the real program on a machine without a GPU (link_check.cu prints the one line saying so).
inline bool cuda_usable() {
    return has_backend(DeviceType::CUDA) && backend(DeviceType::CUDA).device_count() > 0;
}

}  // namespace strata
