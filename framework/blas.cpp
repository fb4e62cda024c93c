// gemm_cpu on Strata's packed kernel or OpenBLAS, and the fixed-order kernel of reproducible mode (see blas.h).
#include "framework/blas.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "framework/check.h"
#include "framework/gemm.h"
#include "framework/parallel.h"
#include "framework/profile.h"

namespace strata {

namespace {
std::atomic<bool> g_reproducible{false};
std::atomic<GemmChoice> g_choice{GemmChoice::kStrata};
std::atomic<int64_t> g_flops{0};
}  // namespace

void set_reproducible_gemm(bool on) { g_reproducible = on; }
bool reproducible_gemm() { return g_reproducible; }
void set_gemm_choice(GemmChoice choice) { g_choice = choice; }
GemmChoice gemm_choice() { return g_choice; }
const char* gemm_choice_name(GemmChoice choice) { return choice == GemmChoice::kStrata ? "strata" : "openblas"; }

GemmChoice parse_gemm_choice(const std::string& name) {
    if (name == "strata") return GemmChoice::kStrata;
    if (name == "openblas") return GemmChoice::kOpenBLAS;
    STRATA_FAIL("gemm: unknown GEMM '", name, "'; the choices are strata (Strata's packed kernel) and openblas");
}

int64_t gemm_flop_count() { return g_flops.load(std::memory_order_relaxed); }

void gemm_fixed_order(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    // Element strides of op(A) (i, k) and op(B) (k, j), so that one loop nest serves all four transpose cases.
    const int64_t a_i = trans_a ? 1 : lda, a_k = trans_a ? lda : 1;
    const int64_t b_k = trans_b ? 1 : ldb, b_j = trans_b ? ldb : 1;
    // C is cut into tiles of kRows x kCols. A task copies op(B)'s block of kDepth rows x kCols columns into a
    // contiguous buffer (zero-padded at the right edge), then runs the k loop of that block for each row of its
    // tile with the kCols partial sums in one array (vector registers). Between blocks the partial sums wait in C.
    // None of this changes the order in which an element's products are added, so neither the tiling nor the
    // split of tiles over threads changes any result.
    constexpr int64_t kCols = 64, kDepth = 256, kRows = 32;
    const int64_t col_tiles = (N + kCols - 1) / kCols, row_tiles = (M + kRows - 1) / kRows;
    parallel_for(0, col_tiles * row_tiles, 1, [&](int64_t lo, int64_t hi) {
        float packed[kDepth * kCols];  // 64 KiB: op(B)[k0 + kk, j0 + j] at packed[kk * kCols + j]
        for (int64_t t = lo; t < hi; ++t) {
            const int64_t j0 = (t % col_tiles) * kCols, i0 = (t / col_tiles) * kRows;
            const int64_t width = std::min(kCols, N - j0), i1 = std::min(M, i0 + kRows);
            for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kDepth) {
                const int64_t depth = std::min(kDepth, K - k0);
                for (int64_t kk = 0; kk < depth; ++kk)
                    for (int64_t j = 0; j < kCols; ++j)
                        packed[kk * kCols + j] = j < width ? B[(k0 + kk) * b_k + (j0 + j) * b_j] : 0.0f;
                for (int64_t i = i0; i < i1; ++i) {
                    float* c = C + i * ldc + j0;
                    float acc[kCols] = {};
                    for (int64_t j = 0; j < width; ++j) acc[j] = k0 > 0 ? c[j] : beta == 0.0f ? 0.0f : beta * c[j];
                    const float* a_row = A + i * a_i + k0 * a_k;
                    for (int64_t kk = 0; kk < depth; ++kk) {
                        const float a = alpha * a_row[kk * a_k];
                        const float* b = packed + kk * kCols;
                        for (int64_t j = 0; j < kCols; ++j) acc[j] = std::fma(a, b[j], acc[j]);
                    }
                    for (int64_t j = 0; j < width; ++j) c[j] = acc[j];
                }
            }
        }
    });
}

namespace {

// The kernel that computes gemm_cpu: the fixed-order one in reproducible mode, else the chosen one.
void gemm_dispatch(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (reproducible_gemm()) {
        gemm_fixed_order(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (gemm_choice() == GemmChoice::kStrata) {
        static const GemmIsa isa = best_gemm_isa();
        gemm_packed(isa, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int64_t kMax = 0x7fffffff;  // cblas takes int sizes
    STRATA_CHECK(M <= kMax && N <= kMax && K <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
                 "gemm_cpu: sizes exceed the 32-bit range of cblas (M=", M, ", N=", N, ", K=", K, ")");
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M),
                int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

}  // namespace

namespace {

// Counts the FLOPs of one GEMM and, when profiling, times `run` (unless it is one of several running in parallel)
// and credits it to the calling kernel.
template <typename Run>
void counted(int64_t M, int64_t N, int64_t K, const Run& run) {
    g_flops.fetch_add(2 * M * N * K, std::memory_order_relaxed);
    if (!profiling()) {
        run();
        return;
    }
    double t0 = profile_clock();
    run();
    profile_gemm(omp_in_parallel() ? 0.0 : profile_clock() - t0, 2 * M * N * K);
}

}  // namespace

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    counted(M, N, K, [&] { gemm_dispatch(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); });
}

bool gemm_cpu_source_available() { return !reproducible_gemm() && gemm_choice() == GemmChoice::kStrata; }

void gemm_cpu_source(bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const GemmPanelSource& b, float beta, float* C, int64_t ldc) {
    STRATA_CHECK(gemm_cpu_source_available(), "gemm_cpu_source: needs gemm=strata outside reproducible mode");
    if (M == 0 || N == 0) return;
    static const GemmIsa isa = best_gemm_isa();
    counted(M, N, K, [&] { gemm_packed_source(isa, trans_a, M, N, K, alpha, A, lda, b, beta, C, ldc); });
}

}  // namespace strata
