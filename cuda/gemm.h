// The one door to cuBLAS on the GPU: row-major single-precision GEMM, the twin of gemm_cpu (framework/blas.h).
//
//     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//
// op(X) is X or its transpose; lda, ldb, ldc are the row strides (in elements) of A, B, C as stored, exactly as for
// gemm_cpu, so an op's CPU and CUDA kernels make the same call with the same arguments. A, B and C are device
// pointers; the GEMM runs on cuda_current_stream(), after everything issued before it. In the emulated build
// (-DCUEMU) it runs on the cuBLAS stand-in (OpenBLAS, cuda/emu/cublas_emu.h). See cuda/gemm.cu for how the
// row-major call maps onto column-major cuBLAS and how the handles are managed.
#pragma once

#include <cstdint>

#include "cuda/blas_shim.h"

namespace strata {

void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The cuBLAS handle of the calling thread's current device, bound to cuda_current_stream(); created on first use.
cublasHandle_t cublas_handle();

// Throws strata::Error: "cuBLAS error: <call> returned <name> (<description>)"; where() names <file>:<line>.
[[noreturn]] void cublas_fail(const char* call, cublasStatus_t status, const char* file, int line);

}  // namespace strata

#define CUBLAS_CHECK(call)                                                                   \
    do {                                                                                     \
        cublasStatus_t cublas_check_status_ = (call);                                        \
        if (cublas_check_status_ != CUBLAS_STATUS_SUCCESS)                                   \
            ::strata::cublas_fail(#call, cublas_check_status_, __FILE__, __LINE__);         \
    } while (0)
