// Strata's own single-precision GEMM for the CPU: packed, cache-blocked, with a register-tiled micro-kernel per
// instruction set (the Goto/BLIS design; docs/gemm.md derives it step by step).
//
//     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]        (row-major, as gemm_cpu in blas.h)
//
// The micro-kernel is chosen at run time from the CPU's features, so one binary runs on any x86-64:
//   avx512    12 x 32 tile of C in 24 zmm registers (needs AVX-512F)
//   avx2      6 x 16 tile in 12 ymm registers (needs AVX2 and FMA)
//   portable  4 x 16 tile in plain C++ loops (any CPU; the compiler vectorises what it can)
// gemm_cpu (blas.h) calls it when the GEMM choice is `strata`; tests and benchmarks call it directly to run every
// kernel the CPU supports.
#pragma once

#include <cstdint>

namespace strata {

enum class GemmIsa { kPortable, kAvx2, kAvx512 };

const char* gemm_isa_name(GemmIsa isa);
bool gemm_isa_supported(GemmIsa isa);  // does this CPU run it?
GemmIsa best_gemm_isa();                 // the widest one this CPU runs

// C = alpha * op(A) * op(B) + beta * C with the micro-kernel of `isa` (which must be supported). Sizes and leading
// dimensions as in gemm_cpu; beta = 0 never reads C. Uses all threads from serial code, one inside a parallel_for.
void gemm_packed(GemmIsa isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace strata
