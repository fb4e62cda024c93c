// dropout2d on the GPU: the CUDA twin of the kernel in layers/dropout2d.cpp (the math and its NOTEs are there).
//
//   y[n, c, :] = x[n, c, :] * (keep[n, c] ? 1/(1-p) : 0),   keep[n, c] = u(n, c) >= p,
//   u(n, c) = u64_to_unit_float(random_u64(key, n*C + c))     (framework/random.h)
//
// The backward is the same kernel on dy with the same key (the op does that), so the GPU needs one kernel.
//
// The mask must be bit-identical to the CPU's, so the generator's three functions are repeated below as __device__
// functions: the ones in framework/random.h are plain inline C++ and cannot be called from a kernel, and framework/
// must not mention CUDA (no __host__ __device__ there). They are the same integer arithmetic on uint64_t, which is
// exact on both processors, and the float conversion takes 24 bits into a float exactly, so the masks agree bit for
// bit (cuda/tests/test_dropout2d.cpp checks it, including planes whose u equals p). KEEP THEM IN STEP with
// framework/random.h.
//
// Mapping: the (n, c) planes on blockIdx.x (grid-stride), a plane's HW values on blockIdx.y and the threads; each
// thread hashes its plane once and scales about 4 values. Memory-bound: a 4-byte load and store per value (the hash,
// about 20 integer instructions, is amortised over the values a thread handles). The result is exact.
#include <algorithm>

#include "cuda/backend.h"
#include "layers/dropout2d.h"

namespace strata {

namespace {

constexpr int kPlaneThreads = 256;  // at most this many threads per plane

// = mix64 in framework/random.h (SplitMix64's finaliser).
__device__ inline uint64_t device_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// = random_u64 in framework/random.h: the i-th 64-bit random number of stream `key`.
__device__ inline uint64_t device_random_u64(uint64_t key, uint64_t i) {
    return device_mix64(key + (i + 1) * 0x9E3779B97F4A7C15ULL);
}

// = u64_to_unit_float in framework/random.h: uniform in [0, 1) from the top 24 bits.
__device__ inline float device_unit_float(uint64_t r) { return float(r >> 40) * (1.0f / 16777216.0f); }

// y, x: (N*C planes, HW). scale = 1/(1-p) (0 when p == 1).
__global__ void dropout2d_forward_kernel(float* y, const float* x, uint64_t key, float p, float scale, int64_t planes,
                                         int64_t HW) {
    for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {  // plane = n * C + c
        const bool keep = device_unit_float(device_random_u64(key, uint64_t(plane))) >= p;
        const float factor = keep ? scale : 0.0f;
        const float* xp = x + plane * HW;
        float* yp = y + plane * HW;
        for (int64_t i = blockIdx.y * int64_t(blockDim.x) + threadIdx.x; i < HW; i += int64_t(gridDim.y) * blockDim.x)
            yp[i] = xp[i] * factor;
    }
}

unsigned clamp_grid(int64_t blocks) { return unsigned(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks); }

void dropout2d_forward_cuda(float* y, const float* x, uint64_t key, float p, int64_t N, int64_t C, int64_t HW) {
    const int64_t planes = N * C;
    if (planes * HW == 0) return;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;  // as on the CPU
    const int64_t threads = std::min<int64_t>(kPlaneThreads, (HW + 31) / 32 * 32);
    const dim3 grid(clamp_grid(planes), clamp_grid((HW + threads * 4 - 1) / (threads * 4)));
    CUEMU_LAUNCH(dropout2d_forward_kernel, grid, unsigned(threads), 0, cuda_current_stream(), y, x, key, p, scale,
                 planes, HW);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(dropout2d_forward, DeviceType::CUDA, dropout2d_forward_cuda);

}  // namespace strata
