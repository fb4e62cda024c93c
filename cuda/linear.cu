// linear on the GPU: the CUDA twins of the kernels in layers/linear.cpp (the math is there). With x flattened to
// X (rows, in), W (out, in), b (out):
//
//   forward:          Y  = X · Wᵀ + b     bias broadcast into Y's rows, then one GEMM with beta = 1
//   backward_input:   dX = dY · W         one GEMM
//   backward_weight:  dW = dYᵀ · X        one GEMM
//
// Each product is one cuBLAS SGEMM through gemm_cuda (cuda/gemm.h), with exactly the arguments the CPU kernel
// passes to gemm_cpu: both run the plan of layers/linear_plan.h. The GEMMs are compute-bound when rows, in and out are all in the hundreds or more (cuBLAS
// SGEMM reaches ~50 TFLOP/s on an H100), memory-bound for PSPNet-sized classifiers with few rows. The bias
// broadcast is one thread per element of Y (grid-stride), memory-bound: one 4-byte store per element, the bias
// itself stays in cache.
#include "cuda/backend.h"
#include "cuda/gemm.h"
#include "layers/linear.h"
#include "layers/linear_plan.h"

namespace strata {

namespace {

// y[r, j] = bias[j] for every row r: y is (rows, out), i < rows * out.
__global__ void broadcast_rows_kernel(float* y, const float* bias, int64_t n, int64_t out) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = bias[i % out];
}

void broadcast_rows(float* y, const float* bias, int64_t rows, int64_t out) {
    int64_t n = rows * out;
    CUEMU_LAUNCH(broadcast_rows_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, bias, n, out);
    CUDA_CHECK_LAUNCH();
}

const LinearDevice kCuda{gemm_cuda, broadcast_rows};

// The kernels of linear.h: the shared plan (layers/linear_plan.h) on the GPU's primitives.
void linear_forward_cuda(float* y, const float* x, const float* weight, const float* bias, int64_t rows, int64_t in,
                         int64_t out) {
    linear_forward_plan(kCuda, y, x, weight, bias, rows, in, out);
}

void linear_backward_input_cuda(float* dx, const float* dy, const float* weight, int64_t rows, int64_t in,
                                int64_t out) {
    linear_backward_input_plan(kCuda, dx, dy, weight, rows, in, out);
}

void linear_backward_weight_cuda(float* dweight, const float* dy, const float* x, int64_t rows, int64_t in,
                                 int64_t out) {
    linear_backward_weight_plan(kCuda, dweight, dy, x, rows, in, out);
}

}  // namespace

REGISTER_KERNEL(linear_forward, DeviceType::CUDA, linear_forward_cuda);
REGISTER_KERNEL(linear_backward_input, DeviceType::CUDA, linear_backward_input_cuda);
REGISTER_KERNEL(linear_backward_weight, DeviceType::CUDA, linear_backward_weight_cuda);

}  // namespace strata
