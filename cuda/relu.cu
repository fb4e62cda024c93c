// relu on the GPU: the CUDA twins of the kernels in layers/relu.cpp (the math and its NOTE are there).
//
//   forward:   y = max(0, x)            NaN stays NaN
//   backward:  dx = dy * [not x <= 0]   (dy where x > 0 or x is NaN, else 0)
//
// One thread per element in a grid-stride loop; both kernels are memory-bound (one or two loads and a store per
// element).
#include "cuda/backend.h"
#include "layers/relu.h"

namespace strata {

namespace {

// y[i] = max(0, x[i]), i < n; NaN stays NaN, as on the CPU.
__global__ void relu_forward_kernel(float* y, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = x[i] <= 0.0f ? 0.0f : x[i];
}

// dx[i] = 0 where x[i] <= 0, else dy[i] (so a NaN x passes dy, as on the CPU)
__global__ void relu_backward_kernel(float* dx, const float* dy, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dx[i] = x[i] <= 0.0f ? 0.0f : dy[i];
}

void relu_forward_cuda(float* y, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(relu_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, x, n);
    CUDA_CHECK_LAUNCH();
}

void relu_backward_cuda(float* dx, const float* dy, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(relu_backward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dy, x, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(relu_forward, DeviceType::CUDA, relu_forward_cuda);
REGISTER_KERNEL(relu_backward, DeviceType::CUDA, relu_backward_cuda);

}  // namespace strata
