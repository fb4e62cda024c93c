// The cuBLAS stand-in of the emulated build: the subset of <cublas_v2.h> Strata uses, on top of OpenBLAS.
//
// cuBLAS is column-major: C (m x n, leading dimension ldc) = alpha * op(A) * op(B) + beta * C, with op(A) m x k.
// The stand-in keeps exactly those semantics (it calls cblas_sgemm with CblasColMajor), so the emulated build tests
// the calling code's leading dimensions, transposes and operand order. It also checks what cuBLAS would not tell
// you: that A, B and C are device memory large enough for the given shapes, and that alpha and beta are host
// pointers (the default pointer mode). As in cuBLAS, beta == 0 means C is not read (it may hold NaN).
#pragma once

#include "cuda/emu/runtime.h"

enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

enum cublasOperation_t {
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
    CUBLAS_OP_C = 2,
};

struct cublasContext;
using cublasHandle_t = cublasContext*;

cublasStatus_t cublasCreate(cublasHandle_t* handle, CUEMU_HERE_DEFAULT);
cublasStatus_t cublasDestroy(cublasHandle_t handle, CUEMU_HERE_DEFAULT);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream, CUEMU_HERE_DEFAULT);
cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream, CUEMU_HERE_DEFAULT);
const char* cublasGetStatusName(cublasStatus_t status);
const char* cublasGetStatusString(cublasStatus_t status);

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc, CUEMU_HERE_DEFAULT);
// batchCount independent GEMMs; matrix i of A starts at A + i * strideA (likewise B and C).
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long strideA, const float* B, int ldb, long long strideB,
                                         const float* beta, float* C, int ldc, long long strideC, int batchCount,
                                         CUEMU_HERE_DEFAULT);
