// add on the GPU: the CUDA twin of the kernel in layers/add.cpp (the math and its NOTEs are there).
//
//   forward:   y = a + b          (the backward needs no kernel: da = db = dy)
//
// One thread per element in a grid-stride loop. Memory-bound: two 4-byte loads and one 4-byte store per element,
// one add. The result is exact (the same single rounding as the CPU).
#include "cuda/backend.h"
#include "layers/add.h"

namespace strata {

namespace {

// y[i] = a[i] + b[i], i < n
__global__ void add_forward_kernel(float* y, const float* a, const float* b, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = a[i] + b[i];
}

void add_forward_cuda(float* y, const float* a, const float* b, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(add_forward_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, a, b, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(add_forward, DeviceType::CUDA, add_forward_cuda);

}  // namespace strata
