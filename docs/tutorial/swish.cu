// swish on the GPU: the CUDA twins of the kernels in swish.cpp (the math and its NOTE are there). One thread per
// element in a grid-stride loop, as cuda/relu.cu.
#include "cuda/backend.h"
#include "swish.h"

namespace strata {

namespace {

__global__ void swish_forward_kernel(float* y, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = x[i] / (1.0f + expf(-x[i]));
}

__global__ void swish_backward_kernel(float* dx, const float* dy, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void swish_forward_cuda(float* y, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(swish_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, x, n);
    CUDA_CHECK_LAUNCH();
}

void swish_backward_cuda(float* dx, const float* dy, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(swish_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dy, x, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(swish_forward, DeviceType::CUDA, swish_forward_cuda);
REGISTER_KERNEL(swish_backward, DeviceType::CUDA, swish_backward_cuda);

}  // namespace strata
