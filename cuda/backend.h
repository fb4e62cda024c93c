// What every file of the CUDA backend includes: the CUDA runtime (the real one under nvcc, the emulator with
// -DCUEMU: see cuda/emu/cuemu.h), error checks that name the call, file and line, the stream a device's work
// runs on, and the launch sizes of elementwise kernels.
//
// NOTE: kernels run on the stream of the calling host thread's *current* device (cudaSetDevice). Kernel-table
// signatures carry no device index: the dispatcher makes the tensor's device current before calling the kernel
// (DeviceBackend::make_current, framework/dispatch.h), so a launcher's cuda_current_stream() is its tensors' device's.
#pragma once

#include <cstdint>

#include "cuda/emu/cuemu.h"
#include "framework/check.h"

namespace strata {

// Throws strata::Error: "CUDA error: <call> returned <name> (<description>)"; where() names <file>:<line>.
[[noreturn]] void cuda_fail(const char* call, cudaError_t error, const char* file, int line);

// The stream of the current device, created on first use. All of a device's kernels, copies and memsets go on it,
// so they run in the order they were issued.
cudaStream_t cuda_current_stream();

// Threads per block and blocks per grid for an elementwise kernel over n elements (a grid-stride loop covers any
// n; the grid is capped so that huge tensors reuse blocks instead of launching millions).
constexpr int kCudaBlockSize = 256;
inline unsigned cuda_grid_for(int64_t n) {
    int64_t blocks = (n + kCudaBlockSize - 1) / kCudaBlockSize;
    return unsigned(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks);
}

}  // namespace strata

#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        cudaError_t cuda_check_error_ = (call);                                              \
        if (cuda_check_error_ != cudaSuccess)                                                \
            ::strata::cuda_fail(#call, cuda_check_error_, __FILE__, __LINE__);              \
    } while (0)

// After a CUEMU_LAUNCH: a bad launch configuration shows up here (a kernel's own failure shows up at the next
// synchronizing call).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
