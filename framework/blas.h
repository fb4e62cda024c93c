// The one door to BLAS on the CPU: row-major single-precision GEMM on top of OpenBLAS's cblas_sgemm.
//
//     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//
// op(X) is X or its transpose. lda, ldb, ldc are the row strides (in elements) of A, B, C as stored: for A this
// is K when not transposed, M when transposed. Called from serial code the GEMM uses all threads; inside a
// parallel_for body it runs on the calling thread (framework/parallel.h).
#pragma once

#include <cstdint>

namespace strata {

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace strata
