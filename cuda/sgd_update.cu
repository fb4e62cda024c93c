// The SGD update on the GPU: the CUDA twin of sgd_update (declared in framework/optimizer.h; the CPU kernel and the
// update rule, PyTorch's, are in framework/optimizer.cpp / optimizer.h). For each element i:
//
//     d = g + weight_decay * p
//     v = d  on the first step,  v = momentum * v + (1 - dampening) * d  afterwards     (only when momentum != 0)
//     d = d + momentum * v  with nesterov,  d = v  without                              (only when momentum != 0)
//     p = p - lr * d
//
// One thread per element in a grid-stride loop; the branches on momentum, first and nesterov are uniform across the
// launch. Memory-bound: per element it loads p, g (and v) and stores p (and v): 12 bytes without momentum, 20 with.
#include "cuda/backend.h"
#include "framework/optimizer.h"

namespace strata {

namespace {

// param, momentum_buf (null when momentum == 0), grad: n elements each.
__global__ void sgd_update_kernel(float* param, float* momentum_buf, const float* grad, float lr, float momentum,
                                  float dampening, float weight_decay, bool nesterov, bool first, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float p = param[i];
        float d = grad[i] + weight_decay * p;
        if (momentum != 0.0f) {
            float v = first ? d : momentum * momentum_buf[i] + (1.0f - dampening) * d;
            momentum_buf[i] = v;
            d = nesterov ? d + momentum * v : v;
        }
        param[i] = p - lr * d;
    }
}

void sgd_update_cuda(float* param, float* momentum_buf, const float* grad, float lr, float momentum, float dampening,
                     float weight_decay, bool nesterov, bool first, int64_t n) {
    if (n == 0) return;
    STRATA_CHECK(momentum == 0.0f || momentum_buf, "sgd_update (cuda): momentum ", momentum,
                 " needs a momentum buffer, got a null pointer");
    CUEMU_LAUNCH(sgd_update_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), param, momentum_buf,
                 grad, lr, momentum, dampening, weight_decay, nesterov, first, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(sgd_update, DeviceType::CUDA, sgd_update_cuda);

}  // namespace strata
