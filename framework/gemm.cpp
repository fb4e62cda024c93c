// Strata's packed GEMM (see gemm.h, and docs/gemm.md for the derivation).
//
// Loop nest, outermost first (BLIS's names):
//   jc  over N in blocks of NC columns        B's block (KC x NC, 2-4 MiB) stays in L3
//   pc  over K in blocks of KC                B's block is packed once per (jc, pc): NR-wide column panels
//   ic  over M in blocks of MC rows           A's block (MC x KC, ~150 KiB) is packed: MR-tall row panels, alpha
//                                             folded in; it stays in L2
//   jr  over the NR-wide panels of B's block  one panel (KC x NR, 32 KiB for NR = 32) stays in L1
//   ir  over the MR-tall panels of A's block
//        micro-kernel: an MR x NR tile of C in registers, KC rank-1 updates, then one pass over C's tile
// Threads: C is cut into one strip per thread (columns when there are enough, so that a GEMM with few rows, M = 64
// in a stem convolution, still keeps every core busy; else rows), and each thread runs the loop nest above on its
// strip with its own packed blocks: one parallel region per call, no barrier inside.
//
// Summation order: each element of C is sum over pc blocks (in increasing k) of the block's partial sum, itself
// accumulated with one fma per k in increasing k. Independent of the thread count, but not the same bits as
// OpenBLAS or the fixed-order kernel (whose every fma goes straight into C).
#include "framework/gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

namespace {

constexpr int64_t kKC = 256, kMC = 144, kNC = 3072;  // multiples of every MR (12, 6, 4) and NR (32, 16)

// A micro-kernel: C_tile (MR x NR, row stride ldc) = acc + (accumulate ? C_tile : beta * C_tile), where
// acc = sum over k < kc of a[k*MR + r] * b[k*NR + j] (packed panels). beta == 0 never reads C.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta,
                             bool accumulate);

struct KernelSpec {
    int64_t mr, nr;
    MicroKernel kernel;
    // Where the ISA has them: rows_kernel[r] computes only the first r rows of the tile (same packed panels, same
    // arithmetic per element). The last row panel of a GEMM whose M is not a multiple of MR uses it instead of
    // computing all MR rows and dropping some: M = 32 (a 32-channel conv) is 12 + 12 + 8 rows, not 36.
    const MicroKernel* rows_kernel = nullptr;
};

// ---- AVX-512: 12 rows x 32 columns (two zmm per row): 24 accumulators + 2 for B + 1 broadcast of A ----

// The first ROWS rows of the 12 x 32 tile (ROWS = 12: the whole tile).
template <int ROWS>
__attribute__((target("avx512f"))) void kernel_avx512_rows(int64_t kc, const float* a, const float* b, float* c,
                                                           int64_t ldc, float beta, bool accumulate) {
    constexpr int MR = 12;
    __m512 lo[ROWS], hi[ROWS];
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k, a += MR, b += 32) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int r = 0; r < ROWS; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r]);
            lo[r] = _mm512_fmadd_ps(ar, b0, lo[r]);
            hi[r] = _mm512_fmadd_ps(ar, b1, hi[r]);
        }
    }
    const __m512 vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; ++r) {
        float* row = c + r * ldc;
        if (accumulate) {
            lo[r] = _mm512_add_ps(lo[r], _mm512_loadu_ps(row));
            hi[r] = _mm512_add_ps(hi[r], _mm512_loadu_ps(row + 16));
        } else if (beta != 0.0f) {
            lo[r] = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row), lo[r]);
            hi[r] = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row + 16), hi[r]);
        }
        _mm512_storeu_ps(row, lo[r]);
        _mm512_storeu_ps(row + 16, hi[r]);
    }
}

constexpr MicroKernel kAvx512Rows[13] = {
    nullptr,
    kernel_avx512_rows<1>, kernel_avx512_rows<2>, kernel_avx512_rows<3>,  kernel_avx512_rows<4>,
    kernel_avx512_rows<5>, kernel_avx512_rows<6>, kernel_avx512_rows<7>,  kernel_avx512_rows<8>,
    kernel_avx512_rows<9>, kernel_avx512_rows<10>, kernel_avx512_rows<11>, kernel_avx512_rows<12>};

// ---- AVX2 + FMA: 6 rows x 16 columns (two ymm per row): 12 accumulators + 2 for B + 1 broadcast ----

__attribute__((target("avx2,fma"))) void kernel_avx2(int64_t kc, const float* a, const float* b, float* c,
                                                     int64_t ldc, float beta, bool accumulate) {
    constexpr int MR = 6;
    __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k, a += MR, b += 16) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            const __m256 ar = _mm256_broadcast_ss(a + r);
            lo[r] = _mm256_fmadd_ps(ar, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(ar, b1, hi[r]);
        }
    }
    const __m256 vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
        float* row = c + r * ldc;
        if (accumulate) {
            lo[r] = _mm256_add_ps(lo[r], _mm256_loadu_ps(row));
            hi[r] = _mm256_add_ps(hi[r], _mm256_loadu_ps(row + 8));
        } else if (beta != 0.0f) {
            lo[r] = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row), lo[r]);
            hi[r] = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row + 8), hi[r]);
        }
        _mm256_storeu_ps(row, lo[r]);
        _mm256_storeu_ps(row + 8, hi[r]);
    }
}

// ---- portable: 4 rows x 16 columns in plain loops ----

void kernel_portable(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta,
                     bool accumulate) {
    constexpr int MR = 4, NR = 16;
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
        for (int r = 0; r < MR; ++r)
            for (int j = 0; j < NR; ++j) acc[r][j] = std::fma(a[r], b[j], acc[r][j]);
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NR; ++j) {
            float* x = c + r * ldc + j;
            *x = accumulate ? acc[r][j] + *x : beta != 0.0f ? std::fma(beta, *x, acc[r][j]) : acc[r][j];
        }
}

KernelSpec spec_of(GemmIsa isa) {
    switch (isa) {
        case GemmIsa::kAvx512: return {12, 32, kernel_avx512_rows<12>, kAvx512Rows};
        case GemmIsa::kAvx2: return {6, 16, kernel_avx2};
        case GemmIsa::kPortable: break;
    }
    return {4, 16, kernel_portable};
}

// The operands as (row, column) strides, so that one packing routine serves both transposes.
struct Operand {
    const float* data;
    int64_t row_stride, col_stride;
    float at(int64_t i, int64_t j) const { return data[i * row_stride + j * col_stride]; }
};

// gemm_pack_transposed on at most 8 rows and 8 columns of dst (rows <= width <= 8): 8x8 blocks transposed in
// registers (the unpack / shuffle / permute network), the last cols % 8 columns of src one float at a time.
__attribute__((target("avx2,fma"))) void transpose_8_avx2(float* dst, int64_t ld_dst, int64_t width, const float* src,
                                                          int64_t ld_src, int64_t rows, int64_t cols, float alpha) {
    alignas(32) int32_t lanes[8];
    for (int j = 0; j < 8; ++j) lanes[j] = j < width ? -1 : 0;
    const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 r[8];
        for (int j = 0; j < 8; ++j) r[j] = j < rows ? _mm256_loadu_ps(src + j * ld_src + k) : _mm256_setzero_ps();
        __m256 t[8], u[8];
        for (int j = 0; j < 8; j += 2) {
            t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
            t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
        }
        for (int j = 0; j < 8; j += 4) {
            u[j] = _mm256_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(3, 2, 3, 2));
            u[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(1, 0, 1, 0));
            u[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int j = 0; j < 4; ++j) {  // column k+j of src is row k+j of dst; the halves come from u[j], u[j+4]
            const __m256 lo = _mm256_mul_ps(va, _mm256_permute2f128_ps(u[j], u[j + 4], 0x20));
            const __m256 hi = _mm256_mul_ps(va, _mm256_permute2f128_ps(u[j], u[j + 4], 0x31));
            if (width == 8) {
                _mm256_storeu_ps(dst + (k + j) * ld_dst, lo);
                _mm256_storeu_ps(dst + (k + j + 4) * ld_dst, hi);
            } else {
                _mm256_maskstore_ps(dst + (k + j) * ld_dst, mask, lo);
                _mm256_maskstore_ps(dst + (k + j + 4) * ld_dst, mask, hi);
            }
        }
    }
    for (; k < cols; ++k)
        for (int64_t j = 0; j < width; ++j) dst[k * ld_dst + j] = j < rows ? alpha * src[j * ld_src + k] : 0.0f;
}

// Packs op(A)[i0 .. i0+mc, k0 .. k0+kc) as MR-tall panels, each kc columns of MR values (alpha applied; rows
// past mc are zero): panel p at dst + p*MR*kc, element (r, k) at [k*MR + r]. A not transposed has its rows along
// K: that is a transpose (gemm_pack_transposed); a transposed A has the MR values of one k side by side.
void pack_a(float* dst, const Operand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, float alpha) {
    for (int64_t p = 0; p < mc; p += mr, dst += mr * kc) {
        const int64_t rows = std::min(mr, mc - p);
        if (a.col_stride == 1) {
            gemm_pack_transposed(dst, mr, mr, a.data + (i0 + p) * a.row_stride + k0, a.row_stride, rows, kc, alpha);
            continue;
        }
        for (int64_t k = 0; k < kc; ++k) {
            const float* column = a.data + (k0 + k) * a.col_stride + (i0 + p) * a.row_stride;
            for (int64_t r = 0; r < rows; ++r) dst[k * mr + r] = alpha * column[r * a.row_stride];
            for (int64_t r = rows; r < mr; ++r) dst[k * mr + r] = 0.0f;
        }
    }
}

// Packs one NR-wide panel of a B held in memory: op(B)[k0 .. k0+kc, j0 .. j0+cols) at panel[k*NR + j], zero columns
// from cols to NR (the GemmPanelSource of an ordinary operand).
void pack_b_panel(const void* context, float* panel, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr) {
    const Operand& b = *static_cast<const Operand*>(context);
    if (b.row_stride == 1 && b.col_stride != 1) {  // B transposed: its rows (columns of op(B)) run along K
        gemm_pack_transposed(panel, nr, nr, b.data + j0 * b.col_stride + k0, b.col_stride, cols, kc, 1.0f);
        return;
    }
    for (int64_t k = 0; k < kc; ++k) {
        float* out = panel + k * nr;
        if (b.col_stride == 1 && cols == nr) {
            std::copy_n(b.data + (k0 + k) * b.row_stride + j0, nr, out);
            continue;
        }
        for (int64_t j = 0; j < nr; ++j) out[j] = j < cols ? b.at(k0 + k, j0 + j) : 0.0f;
    }
}

// C (M x N) = beta * C, for K == 0 (the product is empty).
void scale_c(float* C, int64_t ldc, int64_t M, int64_t N, float beta) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

// The loop nest on one part of C: rows i_base .. i_base+M, columns j_base .. j_base+N of the whole product.
void gemm_part(const KernelSpec& spec, const Operand& a, const GemmPanelSource& b, int64_t M, int64_t N, int64_t K,
               int64_t i_base, int64_t j_base, float beta, float* C, int64_t ldc, float alpha) {
    const int64_t MR = spec.mr, NR = spec.nr;
    thread_local std::vector<float> a_block, b_block;
    a_block.resize(size_t(kMC * kKC));
    b_block.resize(size_t(kKC * (kNC + NR)));
    alignas(64) float edge[12 * 32];  // a partial tile of C, computed whole here, then its valid part copied
    for (int64_t j0 = 0; j0 < N; j0 += kNC) {
        const int64_t nc = std::min(kNC, N - j0), panels = (nc + NR - 1) / NR;
        for (int64_t k0 = 0; k0 < K; k0 += kKC) {
            const int64_t kc = std::min(kKC, K - k0);
            const bool first = k0 == 0;  // the first K block applies beta; later ones add to C
            for (int64_t q = 0; q < panels; ++q)
                b.pack(b.context, b_block.data() + q * NR * kc, k0, kc, j_base + j0 + q * NR,
                       std::min(NR, nc - q * NR), NR);
            for (int64_t i0 = 0; i0 < M; i0 += kMC) {
                const int64_t mc = std::min(kMC, M - i0);
                pack_a(a_block.data(), a, i_base + i0, mc, k0, kc, MR, alpha);
                for (int64_t q = 0; q < panels; ++q) {
                    const int64_t jj = j0 + q * NR, cols = std::min(NR, N - jj);
                    const float* bq = b_block.data() + q * NR * kc;
                    for (int64_t p = 0; p < mc; p += MR) {
                        const int64_t rows = std::min(MR, mc - p);
                        const float* ap = a_block.data() + p * kc;
                        float* c = C + (i_base + i0 + p) * ldc + j_base + jj;
                        const MicroKernel kernel = rows < MR && spec.rows_kernel ? spec.rows_kernel[rows] : spec.kernel;
                        if (cols == NR && (rows == MR || spec.rows_kernel)) {
                            kernel(kc, ap, bq, c, ldc, beta, !first);
                            continue;
                        }
                        kernel(kc, ap, bq, edge, NR, 0.0f, false);
                        for (int64_t r = 0; r < rows; ++r)
                            for (int64_t j = 0; j < cols; ++j) {
                                float& x = c[r * ldc + j];
                                const float v = edge[r * NR + j];
                                x = !first ? v + x : beta != 0.0f ? std::fma(beta, x, v) : v;
                            }
                    }
                }
            }
        }
    }
}

}  // namespace

const char* gemm_isa_name(GemmIsa isa) {
    switch (isa) {
        case GemmIsa::kAvx512: return "avx512";
        case GemmIsa::kAvx2: return "avx2";
        case GemmIsa::kPortable: break;
    }
    return "portable";
}

bool gemm_isa_supported(GemmIsa isa) {
    switch (isa) {
        case GemmIsa::kAvx512: return __builtin_cpu_supports("avx512f");
        case GemmIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case GemmIsa::kPortable: break;
    }
    return true;
}

GemmIsa best_gemm_isa() {
    for (GemmIsa isa : {GemmIsa::kAvx512, GemmIsa::kAvx2})
        if (gemm_isa_supported(isa)) return isa;
    return GemmIsa::kPortable;
}

void gemm_pack_transposed(float* dst, int64_t ld_dst, int64_t width, const float* src, int64_t ld_src, int64_t rows,
                          int64_t cols, float alpha) {
    static const bool avx2 = gemm_isa_supported(GemmIsa::kAvx2);
    for (int64_t j0 = 0; j0 < width; j0 += 8) {  // 8 columns of dst (rows of src) at a time
        const int64_t w = std::min<int64_t>(8, width - j0), n = std::clamp<int64_t>(rows - j0, 0, w);
        float* d = dst + j0;
        const float* s = src + j0 * ld_src;
        if (avx2) {
            transpose_8_avx2(d, ld_dst, w, s, ld_src, n, cols, alpha);
            continue;
        }
        for (int64_t k = 0; k < cols; ++k)
            for (int64_t j = 0; j < w; ++j) d[k * ld_dst + j] = j < n ? alpha * s[j * ld_src + k] : 0.0f;
    }
}

void gemm_packed(GemmIsa isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    const Operand b{B, trans_b ? 1 : ldb, trans_b ? ldb : 1};
    gemm_packed_source(isa, trans_a, M, N, K, alpha, A, lda, GemmPanelSource{pack_b_panel, &b}, beta, C, ldc);
}

void gemm_packed_source(GemmIsa isa, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const GemmPanelSource& b, float beta, float* C, int64_t ldc) {
    STRATA_CHECK(gemm_isa_supported(isa), "gemm_packed: this CPU cannot run the ", gemm_isa_name(isa),
                 " kernel; use best_gemm_isa()");
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    const KernelSpec spec = spec_of(isa);
    const Operand a{A, trans_a ? 1 : lda, trans_a ? lda : 1};
    // One part of C per thread: column strips when there are enough columns, else row strips, cut at multiples
    // of the tile. Each thread runs the whole loop nest on its part with its own packed blocks, so a call has one
    // parallel region and no barrier inside (a barrier per block cost whole time slices on a busy machine).
    const int64_t threads = num_threads();
    const bool by_columns = N >= threads * spec.nr * 4 || M < threads * spec.mr * 2;
    const int64_t extent = by_columns ? N : M, unit = by_columns ? spec.nr : spec.mr;
    const int64_t units = (extent + unit - 1) / unit;
    const int64_t parts = std::min<int64_t>(threads, units);
    parallel_for(0, parts, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t part = lo; part < hi; ++part) {
            const int64_t begin = std::min(extent, part * units / parts * unit);
            const int64_t end = std::min(extent, (part + 1) * units / parts * unit);
            if (by_columns)
                gemm_part(spec, a, b, M, end - begin, K, 0, begin, beta, C, ldc, alpha);
            else
                gemm_part(spec, a, b, end - begin, N, K, begin, 0, beta, C, ldc, alpha);
        }
    });
}

}  // namespace strata
