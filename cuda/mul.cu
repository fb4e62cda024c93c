// mul on the GPU: the CUDA twin of the kernel in layers/mul.cpp (the math is there).
//
//   forward:   y = s * x          (the backward is the same kernel on dy: dx = s * dy)
//
// One thread per element in a grid-stride loop. Memory-bound: one 4-byte load and one 4-byte store per element, one
// multiply. The result is exact (the same single rounding as the CPU).
#include "cuda/backend.h"
#include "layers/mul.h"

namespace strata {

namespace {

// y[i] = s * x[i], i < n
__global__ void mul_forward_kernel(float* y, const float* x, float s, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = s * x[i];
}

void mul_forward_cuda(float* y, const float* x, float s, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(mul_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, x, s, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(mul_forward, DeviceType::CUDA, mul_forward_cuda);

}  // namespace strata
