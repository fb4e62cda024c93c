// The one door to GEMM on the CPU: row-major single-precision matrix products, on Strata's packed kernel
// (framework/gemm.h) or OpenBLAS's cblas_sgemm (the `gemm` config key chooses), or, in reproducible mode, on
// Strata's fixed-order kernel.
//
//     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//
// op(X) is X or its transpose. lda, ldb, ldc are the row strides (in elements) of A, B, C as stored: for A this
// is K when not transposed, M when transposed. Called from serial code the GEMM uses all threads; inside a
// parallel_for body it runs on the calling thread (framework/parallel.h). As in BLAS, beta = 0 never reads C.
//
// Why a reproducible mode: OpenBLAS picks its kernel by CPU (or by OPENBLAS_CORETYPE) and splits the work by thread
// count, and different kernels sum the K products in different orders. The last bits of a GEMM therefore differ
// between machines, and a few SGD steps amplify them (a 10-step PSPNet loss trajectory drifts by percents). The
// fixed-order kernel computes every element the same way everywhere:
//
//     c = (beta == 0 ? 0 : beta * c);   for k = 0, 1, ..., K-1:   c = fma(alpha * a[i,k], b[k,j], c)
//
// one rounding per step, in increasing k, whatever the CPU, the BLAS build or the thread count. It is a plain
// loop nest (several times slower than OpenBLAS), meant for tests and for runs that must match bit for bit across
// machines (the `reproducible` config key), not for speed.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// gemm_cpu with op(B) packed panel by panel by `b` (framework/gemm.h): the implicit-GEMM convolution's door to
// Strata's packed GEMM, counted and profiled as gemm_cpu. Only for the `strata` choice outside reproducible mode
// (gemm_cpu_source_available()); callers fall back to a matrix in memory and gemm_cpu otherwise.
struct GemmPanelSource;
void gemm_cpu_source(bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const GemmPanelSource& b, float beta, float* C, int64_t ldc);
bool gemm_cpu_source_available();

// The fixed-order kernel itself (what gemm_cpu runs in reproducible mode), exposed for tests and benchmarks.
void gemm_fixed_order(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The FLOPs (2*M*N*K per call) every gemm_cpu call of this process has done so far: the nominal work of the
// convolutions and linear layers, which the benchmarks divide by time. One relaxed atomic add per call.
int64_t gemm_flop_count();

// Which fast kernel gemm_cpu runs outside reproducible mode: Strata's packed GEMM with the best micro-kernel this
// CPU runs (the default: on the machine docs/PERFORMANCE.md was measured on it is faster than Debian's OpenBLAS,
// whose kernel choice depends on its build and on OPENBLAS_CORETYPE), or OpenBLAS (`gemm=openblas`). Process-wide.
enum class GemmChoice { kStrata, kOpenBLAS };
void set_gemm_choice(GemmChoice choice);
GemmChoice gemm_choice();
// "strata" or "openblas" (what the `gemm` config key holds); anything else fails with the list.
GemmChoice parse_gemm_choice(const std::string& name);
const char* gemm_choice_name(GemmChoice choice);

struct GemmChoiceScope {
    explicit GemmChoiceScope(GemmChoice choice) : previous(gemm_choice()) { set_gemm_choice(choice); }
    ~GemmChoiceScope() { set_gemm_choice(previous); }
    GemmChoiceScope(const GemmChoiceScope&) = delete;
    GemmChoiceScope& operator=(const GemmChoiceScope&) = delete;
    GemmChoice previous;
};

// Process-wide, like the thread count: every later gemm_cpu call runs the fixed-order kernel while it is on.
void set_reproducible_gemm(bool on);
bool reproducible_gemm();

// Sets the mode for a scope and restores the previous one at its end (a training run, a test).
struct ReproducibleGemmScope {
    explicit ReproducibleGemmScope(bool on) : previous(reproducible_gemm()) { set_reproducible_gemm(on); }
    ~ReproducibleGemmScope() { set_reproducible_gemm(previous); }
    ReproducibleGemmScope(const ReproducibleGemmScope&) = delete;
    ReproducibleGemmScope& operator=(const ReproducibleGemmScope&) = delete;
    bool previous;
};

}  // namespace strata
