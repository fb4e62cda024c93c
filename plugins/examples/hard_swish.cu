// hard_swish on the GPU: the CUDA twins of the kernels in hard_swish.cpp (the math and its NOTE are there).
//
//   forward:   y = x * min(max(x + 3, 0), 6) / 6
//   backward:  dx = dy * (x < -3 ? 0 : x > 3 ? 1 : (2x + 3) / 6)
//
// One thread per element in a grid-stride loop, as cuda/relu.cu. Built into the plugin when nvcc is found.
#include "cuda/backend.h"
#include "plugins/examples/hard_swish.h"

namespace strata {

namespace {

__global__ void hard_swish_forward_kernel(float* y, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = x[i] * fminf(fmaxf(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f;
}

__global__ void hard_swish_backward_kernel(float* dx, const float* dy, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dx[i] = x[i] < -3.0f ? 0.0f : x[i] > 3.0f ? dy[i] : dy[i] * (2.0f * x[i] + 3.0f) / 6.0f;
}

void hard_swish_forward_cuda(float* y, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(hard_swish_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, x, n);
    CUDA_CHECK_LAUNCH();
}

void hard_swish_backward_cuda(float* dx, const float* dy, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(hard_swish_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dy, x,
                 n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(hard_swish_forward, DeviceType::CUDA, hard_swish_forward_cuda);
REGISTER_KERNEL(hard_swish_backward, DeviceType::CUDA, hard_swish_backward_cuda);

}  // namespace strata
