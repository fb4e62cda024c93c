// linear on the GPU: the CUDA twins of the kernels in layers/linear.cpp (the math is there). With x flattened to
// X (rows, in), W (out, in), b (out):
//
//   forward:          Y  = X · Wᵀ + b     bias broadcast into Y's rows, then one GEMM with beta = 1
//   backward_input:   dX = dY · W         one GEMM
//   backward_weight:  dW = dYᵀ · X        one GEMM
//
// Each product is one cuBLAS SGEMM through gemm_cuda (cuda/gemm.h), with exactly the arguments the CPU kernel
// passes to gemm_cpu. The GEMMs are compute-bound when rows, in and out are all in the hundreds or more (cuBLAS
// SGEMM reaches ~50 TFLOP/s on an H100), memory-bound for PSPNet-sized classifiers with few rows. The bias
// broadcast is one thread per element of Y (grid-stride), memory-bound: one 4-byte store per element, the bias
// itself stays in cache.
#include "cuda/backend.h"
#include "cuda/gemm.h"
#include "layers/linear.h"

namespace strata {

namespace {

// y[r, j] = bias[j] for every row r: y is (rows, out), i < rows * out.
__global__ void broadcast_rows_kernel(float* y, const float* bias, int64_t n, int64_t out) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = bias[i % out];
}

// y: (rows, out), x: (rows, in), weight: (out, in), bias: (out) or null.
void linear_forward_cuda(float* y, const float* x, const float* weight, const float* bias, int64_t rows, int64_t in,
                         int64_t out) {
    float beta = 0.0f;  // without a bias the GEMM overwrites y
    if (bias && rows > 0) {
        int64_t n = rows * out;
        CUEMU_LAUNCH(broadcast_rows_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, bias, n,
                     out);
        CUDA_CHECK_LAUNCH();
        beta = 1.0f;
    }
    // y[rows, out] = x[rows, in] · weight[out, in]ᵀ + beta * y
    gemm_cuda(false, true, rows, out, in, 1.0f, x, in, weight, in, beta, y, out);
}

// dx: (rows, in), dy: (rows, out), weight: (out, in).
void linear_backward_input_cuda(float* dx, const float* dy, const float* weight, int64_t rows, int64_t in,
                                int64_t out) {
    gemm_cuda(false, false, rows, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in);
}

// dweight: (out, in), dy: (rows, out), x: (rows, in).
void linear_backward_weight_cuda(float* dweight, const float* dy, const float* x, int64_t rows, int64_t in,
                                 int64_t out) {
    gemm_cuda(true, false, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dweight, in);
}

}  // namespace

REGISTER_KERNEL(linear_forward, DeviceType::CUDA, linear_forward_cuda);
REGISTER_KERNEL(linear_backward_input, DeviceType::CUDA, linear_backward_input_cuda);
REGISTER_KERNEL(linear_backward_weight, DeviceType::CUDA, linear_backward_weight_cuda);

}  // namespace strata
