// gemm_cpu on OpenBLAS (see blas.h).
#include "framework/blas.h"

#include <cblas.h>

#include "framework/check.h"

namespace strata {

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    const int64_t kMax = 0x7fffffff;  // cblas takes int sizes
    STRATA_CHECK(M <= kMax && N <= kMax && K <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
                 "gemm_cpu: sizes exceed the 32-bit range of cblas (M=", M, ", N=", N, ", K=", K, ")");
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M),
                int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

}  // namespace strata
