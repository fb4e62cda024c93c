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

// op(B) given not as a matrix in memory but as a routine that packs one panel of it, for the implicit-GEMM
// convolution (layers/conv2d.cpp packs the im2col matrix straight from the activation, one panel at a time, so
// that the whole matrix never exists). pack(context, panel, k0, kc, j0, cols, nr) writes
//     panel[k*nr + j] = op(B)[k0 + k, j0 + j]   for k < kc, j < cols,   and 0 for cols <= j < nr.
// It is called from several threads at once (on disjoint panels) and must not allocate.
struct GemmPanelSource {
    void (*pack)(const void* context, float* panel, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr);
    const void* context;
};

// The packing of an operand whose rows run along K (A not transposed, B transposed, colᵀ in conv2d's weight
// gradient): `rows` rows of src written as the first columns of dst, alpha applied, zero columns up to width:
//     dst[k*ld_dst + j] = alpha * src[j*ld_src + k]   for j < rows, k < cols;   0 for rows <= j < width.
// A transpose, in 8x8 blocks of AVX2 registers where the CPU has them (scalar code gathering one float per load
// made these packings cost as much as the micro-kernel on the small GEMMs of a 13x13 map). Exact: no rounding.
void gemm_pack_transposed(float* dst, int64_t ld_dst, int64_t width, const float* src, int64_t ld_src, int64_t rows,
                          int64_t cols, float alpha);

// gemm_packed with op(B) from `b`: the same blocking, threads and summation order as gemm_packed.
void gemm_packed_source(GemmIsa isa, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const GemmPanelSource& b, float beta, float* C, int64_t ldc);

}  // namespace strata
