// gemm_cpu on OpenBLAS, and the fixed-order kernel of reproducible mode (see blas.h).
#include "framework/blas.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

namespace {
std::atomic<bool> g_reproducible{false};
}  // namespace

void set_reproducible_gemm(bool on) { g_reproducible = on; }
bool reproducible_gemm() { return g_reproducible; }

void gemm_fixed_order(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    // Element strides of op(A) (i, k) and op(B) (k, j), so that one loop nest serves all four transpose cases.
    const int64_t a_i = trans_a ? 1 : lda, a_k = trans_a ? lda : 1;
    const int64_t b_k = trans_b ? 1 : ldb, b_j = trans_b ? ldb : 1;
    // A tile of kTile columns of one row of C is accumulated in registers while k runs (the order of the k loop is
    // what fixes the result; tiling over i and j only changes which elements are computed together). Rows are
    // independent, so they are split over the threads without changing any element.
    constexpr int64_t kTile = 64;
    parallel_for(0, M, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * K)), [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
            const float* a_row = A + i * a_i;
            float* c_row = C + i * ldc;
            for (int64_t j0 = 0; j0 < N; j0 += kTile) {
                const int64_t width = std::min(kTile, N - j0);
                float acc[kTile];
                for (int64_t j = 0; j < width; ++j) acc[j] = beta == 0.0f ? 0.0f : beta * c_row[j0 + j];
                for (int64_t k = 0; k < K; ++k) {
                    const float a = alpha * a_row[k * a_k];
                    const float* b = B + k * b_k + j0 * b_j;
                    if (b_j == 1) {
                        for (int64_t j = 0; j < width; ++j) acc[j] = std::fma(a, b[j], acc[j]);
                    } else {
                        for (int64_t j = 0; j < width; ++j) acc[j] = std::fma(a, b[j * b_j], acc[j]);
                    }
                }
                for (int64_t j = 0; j < width; ++j) c_row[j0 + j] = acc[j];
            }
        }
    });
}

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (reproducible_gemm()) {
        gemm_fixed_order(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int64_t kMax = 0x7fffffff;  // cblas takes int sizes
    STRATA_CHECK(M <= kMax && N <= kMax && K <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
                 "gemm_cpu: sizes exceed the 32-bit range of cblas (M=", M, ", N=", N, ", K=", K, ")");
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M),
                int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

}  // namespace strata
