// conv2d: 2-D convolution of an NCHW batch by im2col + GEMM (Caffe, darknet).
//
// x (N, C, H, W), weight W (K, C, R, S), bias b (K); output y (N, K, P, Q) with
//     P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1,   Q likewise.
// Like PyTorch (and every framework) this is a cross-correlation: the kernel is not flipped.
//
//   forward:   y[n,k,p,q] = b[k] + sum_{c,r,s} W[k,c,r,s] * x[n, c, p*stride_h - pad_h + r*dil_h,
//                                                            q*stride_w - pad_w + s*dil_w]
//              (x reads as 0 outside the image: that is the zero padding)
//
// im2col turns this into one matrix product per image. Row (c,r,s) of the column matrix holds, for every output
// pixel (p,q), the input value that kernel tap (c,r,s) multiplies there:
//     col_n[(c*R + r)*S + s, p*Q + q] = x[n, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w]
// so that, with W viewed as a (K, C*R*S) matrix and y_n as (K, P*Q):
//     y_n = W · col_n + b                                       (GEMM: M = K, N = P*Q, K = C*R*S)
//
//   backward:  dW = sum_n dy_n · col_nᵀ                          (GEMM "NT", accumulated over the images)
//              db[k] = sum_{n,p,q} dy[n,k,p,q]                    (b is added at every output pixel)
//              dcol_n = Wᵀ · dy_n                                (GEMM "TN"), then dx_n = col2im(dcol_n):
//              every entry of col_n is a copy of one x element (or of a padding zero), so its gradient goes back
//              to that element; col2im adds up the up to R*S copies of each x element and drops the padding ones.
//
// Two shortcuts keep the GEMMs big and the copies few:
//  - 1x1 kernel, stride 1, no padding: col_n IS x_n seen as a (C, H*W) matrix, so im2col is skipped, the forward
//    GEMM reads x directly and the backward GEMM writes dx directly (35 of PSPNet-50's 55 backbone convs).
//  - Small maps (PSPNet's pooled 1x1..6x6 maps, a batch of 13x13 maps): a GEMM with P*Q = 36 columns runs far
//    below the machine's peak. G images then share one GEMM: their columns sit side by side in col
//    (C*R*S, G*P*Q), the GEMM writes y in the same layout (K, G*P*Q) into the scratch `ycol`, and a copy moves it
//    to (G, K, P*Q). The backward gathers dy into that layout the same way. G is about the smallest count of
//    images whose maps together have at least kMinGemmColumns output pixels (1 for maps of 32x32 and more).
//
// NOTE: the backward kernel accumulates inside its own outputs (dW over the images, dx over the R*S taps of col2im)
// but always starts from zero (beta = 0 for the first image, a zeroed plane in col2im): it writes its outputs, as
// every backward kernel must; the engine does the accumulation across ops.
// NOTE: the output size is checked before it is computed: in C++ integer division truncates towards zero, so a
// negative numerator (kernel larger than the padded input) would otherwise give P = 1 instead of an error.
// Implicit GEMM (the CPU path with Strata's GEMM): col is never built. The GEMM packs its B operand one panel
// (KC taps x NR pixels, or for dW KC pixels x NR taps) at a time into the packing buffer it uses anyway, and the
// packing routine (pack_col_panel, pack_col_t_panel below) reads those values from x with the im2col formula
// above. The forward and dW therefore need no scratch of the size of col. The input gradient cannot be done the
// same way: col2im must add the up to R*S entries of dcol that come from one x element, and those sit in
// different C tiles that different threads compute (a scatter-add with races), and for K > KC a tile is only
// final after the last K block. So dcol is computed for a chunk of input channels at a time (rows c*R*S of Wᵀ)
// and folded into dx by col2im before the next chunk: the scratch is bounded by kDxChunkFloats.
// NOTE: memory without implicit GEMM (CUDA; gemm=openblas; reproducible mode): col holds C*R*S*G*P*Q floats:
// 531 MB for PSPNet's 3x3 4096->512 classifier conv at 60x60 (with implicit GEMM: the 32 MB dx chunk). The CPU
// allocator caches freed blocks (framework/device.cpp), so the next conv of that size reuses the block.
#include "layers/conv2d.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/gemm.h"
#include "framework/parallel.h"
#include "framework/registry.h"
#include "layers/conv2d_plan.h"
#include "layers/conv2d_winograd.h"

namespace strata {

constinit KernelTable<conv2d_forward_fn> conv2d_forward{"conv2d_forward"};
constinit KernelTable<conv2d_backward_fn> conv2d_backward{"conv2d_backward"};

namespace {

// Below this many output pixels per GEMM, several images share one GEMM. On this project's 2-core machine OpenBLAS
// sgemm with M = 256..512, K = 2048..4608 reaches about 25% of its large-N rate at N = 36, 60% at N = 169, and
// levels off from N ~ 700..1000 on (`conv2d_bench --feature 13 --batch 8` shows the effect on whole layers).
constexpr int64_t kMinGemmColumns = 1024;

// The input gradient's dcol chunk with implicit GEMM: at most this many floats (32 MB), i.e. 258 channels of a 3x3
// conv at 60x60 (M = 2322 rows in the chunk's GEMM). Measured on layer4's 3x3 512->512 conv at 60x60: chunks of
// 8 MB (64 channels) made its dx ~1.6x slower than one GEMM over all channels, 32 MB within ~10%.
constexpr int64_t kDxChunkFloats = int64_t(1) << 23;

std::atomic<bool> g_implicit_gemm{true};

}  // namespace

bool conv2d_use_implicit_gemm(Device device) {
    return device.is_cpu() && g_implicit_gemm && gemm_cpu_source_available();
}

void set_conv2d_implicit_gemm(bool on) { g_implicit_gemm = on; }

int64_t conv2d_dx_chunk_channels(const Conv2dShape& s) {
    if (!s.implicit_gemm) return s.C;
    const int64_t rows = s.R * s.S * s.images_per_gemm * s.P * s.Q;  // floats of one channel's rows of dcol
    return std::clamp<int64_t>(kDxChunkFloats / rows, 1, s.C);
}

int64_t conv2d_scratch_col(const Conv2dShape& s) {
    if (s.winograd) return conv2d_winograd_scratch(s);
    if (conv2d_is_pointwise(s) && s.images_per_gemm == 1) return 0;
    return conv2d_dx_chunk_channels(s) * s.R * s.S * s.images_per_gemm * s.P * s.Q;
}

int64_t conv2d_scratch_ycol(const Conv2dShape& s) {
    return s.images_per_gemm > 1 ? s.K * s.images_per_gemm * s.P * s.Q : 0;
}

namespace {

// The output columns q of kernel column t that read inside the image: q reads input column q*stride_w + offset,
// which lies in [0, W) exactly for q in [lo, hi); the columns before lo and from hi on read padding.
struct ColumnRange {
    int64_t lo, hi, offset;
};

ColumnRange column_range(const Conv2dShape& s, int64_t t) {
    int64_t offset = t * s.dil_w - s.pad_w;
    int64_t lo = offset >= 0 ? 0 : (-offset + s.stride_w - 1) / s.stride_w;   // first q with q*stride + offset >= 0
    int64_t hi = offset > s.W - 1 ? 0 : (s.W - 1 - offset) / s.stride_w + 1;  // one past the last q inside
    lo = std::min(lo, s.Q);
    hi = std::max(lo, std::min(hi, s.Q));
    return {lo, hi, offset};
}

// column_range of the first kCachedTaps kernel columns, computed once per call of a kernel: column_range divides,
// and the packers and col2im would otherwise call it once per row of col (once per panel row, per plane and tap):
// for a 32-channel conv on a 49x49 map that made packing cost as much as the micro-kernel.
constexpr int64_t kCachedTaps = 16;

struct ColumnRanges {
    const Conv2dShape* s;
    ColumnRange cached[kCachedTaps];

    explicit ColumnRanges(const Conv2dShape& shape) : s(&shape) {
        for (int64_t t = 0; t < std::min(shape.S, kCachedTaps); ++t) cached[t] = column_range(shape, t);
    }
    ColumnRange of(int64_t t) const { return t < kCachedTaps ? cached[t] : column_range(*s, t); }
};

// Part of one row of im2col: dst[q - q0] = src[q*stride + offset] for q in [q0, q1) inside [lo, hi), 0 for the
// other q in [q0, q1) (the whole row is q0 = 0, q1 = Q).
// NOTE: the row loops live in these small helpers, with few live variables, on purpose: written out inside the
// loop nests below, GCC ran out of registers in the strided loops (spilling pointers on every element), which
// made the stride-2 backward of PSPNet's layer2.0.conv2 about 20% slower.
void im2col_row(float* dst, const float* src, int64_t q0, int64_t q1, int64_t stride, ColumnRange c) {
    const int64_t lo = std::clamp(c.lo, q0, q1), hi = std::clamp(c.hi, lo, q1);
    std::fill(dst, dst + (lo - q0), 0.0f);
    if (stride == 1) {
        std::memcpy(dst + (lo - q0), src + lo + c.offset, size_t(hi - lo) * sizeof(float));
    } else if (stride == 2) {
        // PSPNet's stride-2 convs. At -O2 GCC leaves this gather scalar; `omp simd` asks it to vectorise the loop
        // (loads + permutes for the constant stride), which makes these convs ~5-10% faster.
#pragma omp simd
        for (int64_t q = lo; q < hi; ++q) dst[q - q0] = src[2 * q + c.offset];
    } else {
        for (int64_t q = lo; q < hi; ++q) dst[q - q0] = src[q * stride + c.offset];
    }
    std::fill(dst + (hi - q0), dst + (q1 - q0), 0.0f);
}

// One row of col2im: dst[q*stride + offset] += src[q] for q in [lo, hi).
// `omp simd` as in im2col_row (at -O2 GCC vectorises neither loop by itself); it is safe because no two iterations
// touch the same element of dst and src (a row of dcol) never overlaps dst (a plane of dx).
void col2im_row(float* dst, const float* src, int64_t stride, ColumnRange c) {
    if (stride == 1) {
#pragma omp simd
        for (int64_t q = c.lo; q < c.hi; ++q) dst[q + c.offset] += src[q];
    } else if (stride == 2) {
#pragma omp simd
        for (int64_t q = c.lo; q < c.hi; ++q) dst[2 * q + c.offset] += src[q];
    } else {
        for (int64_t q = c.lo; q < c.hi; ++q) dst[q * stride + c.offset] += src[q];
    }
}

// col (C*R*S, images*P*Q) from x (images, C, H, W):
//   col[(c*R + r)*S + s, g*P*Q + p*Q + q] = x[g, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w]
// and 0 where that position is padding. One row per (c, r, s); the threads split the rows.
void im2col_cpu(float* col, const float* x, int64_t images, const Conv2dShape& s) {
    const int64_t RS = s.R * s.S, PQ = s.P * s.Q, cols = images * PQ;
    if (conv2d_is_pointwise(s)) {
        // (only reached with images > 1) row c of col holds the planes x[g, c] side by side: copy them whole
        parallel_for(0, images * s.C, std::max<int64_t>(1, 16384 / PQ), [&](int64_t lo, int64_t hi) {
            for (int64_t gc = lo; gc < hi; ++gc) {
                int64_t g = gc / s.C, c = gc % s.C;
                std::memcpy(col + c * cols + g * PQ, x + gc * PQ, size_t(PQ) * sizeof(float));
            }
        });
        return;
    }
    parallel_for(0, s.C * RS, std::max<int64_t>(1, 16384 / cols), [&](int64_t lo, int64_t hi) {
        for (int64_t row = lo; row < hi; ++row) {
            int64_t c = row / RS, r = row / s.S % s.R, t = row % s.S;
            ColumnRange range = column_range(s, t);
            for (int64_t g = 0; g < images; ++g) {
                const float* plane = x + (g * s.C + c) * s.H * s.W;
                float* dst = col + row * cols + g * PQ;
                for (int64_t p = 0; p < s.P; ++p, dst += s.Q) {
                    int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                    if (h < 0 || h >= s.H) {  // the whole output row reads the top or bottom padding
                        std::fill(dst, dst + s.Q, 0.0f);
                    } else {
                        im2col_row(dst, plane + h * s.W, 0, s.Q, s.stride_w, range);
                    }
                }
            }
        }
    });
}

// Channels c0 .. c0+channels of dx (images, C, H, W) from their rows of dcol (channels*R*S, images*P*Q): the
// transpose of im2col. Each x element receives the sum of the col entries that were copied from it; entries copied
// from padding are dropped. The threads split the (image, channel) planes, which no two of them share.
void col2im_cpu(float* dx, const float* dcol, int64_t images, int64_t c0, int64_t channels, const Conv2dShape& s) {
    const int64_t PQ = s.P * s.Q, cols = images * PQ;
    if (conv2d_is_pointwise(s)) {
        // (only reached with images > 1) each x element was copied exactly once: copy the planes back
        parallel_for(0, images * channels, std::max<int64_t>(1, 16384 / PQ), [&](int64_t lo, int64_t hi) {
            for (int64_t gc = lo; gc < hi; ++gc) {
                int64_t g = gc / channels, c = gc % channels;
                std::memcpy(dx + (g * s.C + c0 + c) * PQ, dcol + c * cols + g * PQ, size_t(PQ) * sizeof(float));
            }
        });
        return;
    }
    const ColumnRanges ranges(s);
    parallel_for(0, images * channels, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t gc = lo; gc < hi; ++gc) {
            int64_t g = gc / channels, c = gc % channels;  // c: the channel within the chunk
            float* plane = dx + (g * s.C + c0 + c) * s.H * s.W;
            std::fill(plane, plane + s.H * s.W, 0.0f);
            for (int64_t r = 0; r < s.R; ++r) {
                for (int64_t t = 0; t < s.S; ++t) {
                    const ColumnRange range = ranges.of(t);
                    const float* src = dcol + ((c * s.R + r) * s.S + t) * cols + g * PQ;
                    for (int64_t p = 0; p < s.P; ++p, src += s.Q) {
                        int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                        if (h >= 0 && h < s.H) col2im_row(plane + h * s.W, src, s.stride_w, range);
                    }
                }
            }
        }
    });
}

// ---- implicit GEMM: the packing routines that read col's values from x (GemmPanelSource, framework/gemm.h) ----

// What they read: x of `images` images (images, C, H, W), seen as col (C*R*S, images*P*Q), and the column ranges
// of the kernel columns, computed once per GEMM (see ColumnRanges).
struct ColSource {
    const float* x;
    const Conv2dShape* s;
    ColumnRanges ranges;

    ColSource(const float* x_, const Conv2dShape* s_) : x(x_), s(s_), ranges(*s_) {}
    ColumnRange range(int64_t t) const { return ranges.of(t); }
};

// The input row that output row p reads for kernel row r, or -1 where that is padding.
int64_t input_row(const Conv2dShape& s, int64_t p, int64_t r) {
    const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
    return h >= 0 && h < s.H ? h : -1;
}

// Steps the tap (c, r, t) of a col row to the next row's.
void next_tap(const Conv2dShape& s, int64_t& c, int64_t& r, int64_t& t) {
    if (++t < s.S) return;
    t = 0;
    if (++r < s.R) return;
    r = 0;
    ++c;
}

// A run of consecutive col columns (output pixels) in one output row p of one image: columns j .. j+len are the
// pixels (p, q0 .. q0+len) of the image whose planes start at `image`.
struct PixelRun {
    const float* image;
    int64_t p, q0, len;
};

PixelRun pixel_run(const ColSource& src, int64_t j, int64_t end) {
    const Conv2dShape& s = *src.s;
    const int64_t PQ = s.P * s.Q, g = j / PQ, p = j % PQ / s.Q, q0 = j % PQ % s.Q;
    return {src.x + g * s.C * s.H * s.W, p, q0, std::min(s.Q - q0, end - j)};
}

// The forward's B = col: panel[k*nr + j] = col[k0 + k, j0 + j]. One kernel tap (c, r, t) per panel row, read for
// the panel's pixels, which form a few runs of one output row each.
void pack_col_panel(const void* context, float* panel, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr) {
    const ColSource& src = *static_cast<const ColSource*>(context);
    const Conv2dShape& s = *src.s;
    PixelRun runs[64];  // a run per output row the panel touches: at most nr of them
    int64_t n_runs = 0;
    for (int64_t j = j0; j < j0 + cols; j += runs[n_runs++].len) {
        STRATA_CHECK(n_runs < 64, "conv2d: pack_col_panel: panel wider than 64 columns");
        runs[n_runs] = pixel_run(src, j, j0 + cols);
    }
    int64_t c = k0 / (s.R * s.S), r = k0 / s.S % s.R, t = k0 % s.S;  // the tap of row k0, then stepped
    for (int64_t k = 0; k < kc; ++k) {
        const ColumnRange range = src.range(t);
        float* out = panel + k * nr;
        for (int64_t i = 0; i < n_runs; ++i) {
            const PixelRun& run = runs[i];
            const int64_t h = input_row(s, run.p, r);
            if (h < 0)
                std::fill(out, out + run.len, 0.0f);
            else
                im2col_row(out, run.image + (c * s.H + h) * s.W, run.q0, run.q0 + run.len, s.stride_w, range);
            out += run.len;
        }
        std::fill(panel + k * nr + cols, panel + (k + 1) * nr, 0.0f);
        next_tap(s, c, r, t);
    }
}

// The weight gradient's B = colᵀ: panel[k*nr + j] = col[j0 + j, k0 + k] (rows: pixels k0 .. k0+kc, columns:
// taps). The panel's taps are first gathered as rows of col (contiguous runs, as in the forward) into a scratch
// block, which gemm_pack_transposed then turns into the panel: written straight down the panel's columns, one
// float per store, this packing cost as much as the micro-kernel on the 32-channel convs of a 49x49 map.
void pack_col_t_panel(const void* context, float* panel, int64_t k0, int64_t kc, int64_t j0, int64_t cols,
                      int64_t nr) {
    const ColSource& src = *static_cast<const ColSource*>(context);
    const Conv2dShape& s = *src.s;
    thread_local std::vector<float> rows;  // (cols, kc): col's rows j0 .. j0+cols over pixels k0 .. k0+kc
    rows.resize(size_t(cols * kc));
    for (int64_t k = k0; k < k0 + kc;) {
        const PixelRun run = pixel_run(src, k, k0 + kc);
        float* out = rows.data() + (k - k0);
        int64_t c = j0 / (s.R * s.S), r = j0 / s.S % s.R, t = j0 % s.S;
        for (int64_t j = 0; j < cols; ++j, out += kc) {
            const int64_t h = input_row(s, run.p, r);
            if (h < 0)
                std::fill(out, out + run.len, 0.0f);
            else
                im2col_row(out, run.image + (c * s.H + h) * s.W, run.q0, run.q0 + run.len, s.stride_w, src.range(t));
            next_tap(s, c, r, t);
        }
        k += run.len;
    }
    gemm_pack_transposed(panel, nr, nr, rows.data(), kc, cols, kc, 1.0f);
}

// y (images, K, P*Q) = ycol (K, images*P*Q) rearranged, plus bias[k] (bias may be null). With images == 1 the
// two layouts are the same and ycol may be y itself (then only the bias is added).
void ycol_to_y(float* y, const float* ycol, const float* bias, int64_t images, int64_t K, int64_t PQ) {
    parallel_for(0, images * K, std::max<int64_t>(1, 16384 / PQ), [&](int64_t lo, int64_t hi) {
        for (int64_t gk = lo; gk < hi; ++gk) {
            int64_t g = gk / K, k = gk % K;
            const float* src = ycol + k * images * PQ + g * PQ;
            float* dst = y + gk * PQ;
            float b = bias ? bias[k] : 0.0f;
            for (int64_t i = 0; i < PQ; ++i) dst[i] = src[i] + b;
        }
    });
}

// ycol (K, images*P*Q) = y (images, K, P*Q) rearranged: the inverse of ycol_to_y, used to gather dy.
void y_to_ycol(float* ycol, const float* y, int64_t images, int64_t K, int64_t PQ) {
    parallel_for(0, images * K, std::max<int64_t>(1, 16384 / PQ), [&](int64_t lo, int64_t hi) {
        for (int64_t gk = lo; gk < hi; ++gk) {
            int64_t g = gk / K, k = gk % K;
            std::memcpy(ycol + k * images * PQ + g * PQ, y + gk * PQ, size_t(PQ) * sizeof(float));
        }
    });
}

// db[k] = sum over images and pixels of dy[n, k, :, :]
void bias_grad_cpu(float* dbias, const float* dy, const Conv2dShape& s) {
    const int64_t PQ = s.P * s.Q;
    parallel_for(0, s.K, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t k = lo; k < hi; ++k) {
            double sum = 0.0;
            for (int64_t n = 0; n < s.N; ++n) {
                const float* d = dy + (n * s.K + k) * PQ;
                for (int64_t i = 0; i < PQ; ++i) sum += d[i];
            }
            dbias[k] = float(sum);
        }
    });
}

// out (K, images*PQ) = weight (K, CRS) · col(x), col packed from x by the GEMM
void forward_implicit_cpu(float* out, const float* weight, const float* x, int64_t images, const Conv2dShape& s) {
    const int64_t CRS = s.C * s.R * s.S, cols = images * s.P * s.Q;
    const ColSource src{x, &s};
    gemm_cpu_source(false, s.K, cols, CRS, 1.0f, weight, CRS, GemmPanelSource{pack_col_panel, &src}, 0.0f, out, cols);
}

// dweight (K, CRS) = dy (K, images*PQ) · col(x)ᵀ + beta * dweight, colᵀ packed from x by the GEMM
void weight_grad_implicit_cpu(float* dweight, const float* dy, const float* x, int64_t images, float beta,
                              const Conv2dShape& s) {
    const int64_t CRS = s.C * s.R * s.S, cols = images * s.P * s.Q;
    const ColSource src{x, &s};
    gemm_cpu_source(false, s.K, CRS, cols, 1.0f, dy, cols, GemmPanelSource{pack_col_t_panel, &src}, beta, dweight,
                    CRS);
}

const Conv2dDevice kCpu{gemm_cpu,       im2col_cpu,    col2im_cpu,           ycol_to_y,
                        y_to_ycol,      bias_grad_cpu, forward_implicit_cpu, weight_grad_implicit_cpu};

// The kernels of conv2d.h: the shared plan (layers/conv2d_plan.cpp) on the CPU's primitives.
void conv2d_forward_cpu(float* y, const float* x, const float* weight, const float* bias, float* col, float* ycol,
                        const Conv2dShape& s) {
    if (s.winograd) return winograd_conv3x3_cpu(y, x, weight, bias, col, winograd_forward_shape(s));
    conv2d_forward_plan(kCpu, y, x, weight, bias, col, ycol, s);
}

void conv2d_backward_cpu(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                         float* col, float* ycol, const Conv2dShape& s) {
    if (s.winograd && dx) {  // dx by Winograd (col is its scratch), dweight and dbias by the plan
        conv2d_backward_plan(kCpu, nullptr, dweight, dbias, dy, x, weight, col, ycol, s);
        return winograd_conv3x3_cpu(dx, dy, weight, nullptr, col, winograd_dx_shape(s));
    }
    conv2d_backward_plan(kCpu, dx, dweight, dbias, dy, x, weight, col, ycol, s);
}

}  // namespace

REGISTER_KERNEL(conv2d_forward, DeviceType::CPU, conv2d_forward_cpu);
REGISTER_KERNEL(conv2d_backward, DeviceType::CPU, conv2d_backward_cpu);

namespace {

// One output dimension (P or Q), after checking that the dilated kernel fits in the padded input.
int64_t output_size(const char* dim, int64_t input, int64_t kernel, int64_t stride, int64_t pad, int64_t dil) {
    int64_t span = dil * (kernel - 1) + 1;  // extent of the dilated kernel
    STRATA_CHECK(input + 2 * pad >= span, "conv2d: output ", dim, " would be <= 0: input ", dim, " ", input,
                 " + 2*padding ", pad, " = ", input + 2 * pad, " is smaller than the dilated kernel ", dim, " ", span,
                 " (kernel ", kernel, ", dilation ", dil, ")");
    return (input + 2 * pad - span) / stride + 1;
}

void check_options(const Conv2dOptions& o) {
    STRATA_CHECK(o.stride.h >= 1 && o.stride.w >= 1, "conv2d: stride must be >= 1, got (", o.stride.h, ", ", o.stride.w,
                 ")");
    STRATA_CHECK(o.padding.h >= 0 && o.padding.w >= 0, "conv2d: padding must be >= 0, got (", o.padding.h, ", ",
                 o.padding.w, ")");
    STRATA_CHECK(o.dilation.h >= 1 && o.dilation.w >= 1, "conv2d: dilation must be >= 1, got (", o.dilation.h, ", ",
                 o.dilation.w, ")");
}

// Allocates a scratch buffer of n floats on `device`, or returns an undefined tensor for n == 0.
Tensor scratch(int64_t n, Device device) { return n > 0 ? empty({n}, DType::F32, device) : Tensor(); }
float* ptr(const Tensor& t) { return t.defined() ? t.f32() : nullptr; }

}  // namespace

Conv2dShape conv2d_shape(const Shape& x, const Shape& weight, const Conv2dOptions& o) {
    STRATA_CHECK(x.size() == 4 && weight.size() == 4, "conv2d: shapes must be (N,C,H,W) and (K,C,R,S), got ",
                 shape_str(x), " and ", shape_str(weight));
    check_options(o);
    Conv2dShape s;
    s.N = x[0], s.C = x[1], s.H = x[2], s.W = x[3];
    s.K = weight[0], s.R = weight[2], s.S = weight[3];
    s.stride_h = o.stride.h, s.stride_w = o.stride.w;
    s.pad_h = o.padding.h, s.pad_w = o.padding.w;
    s.dil_h = o.dilation.h, s.dil_w = o.dilation.w;
    s.P = output_size("height", s.H, s.R, s.stride_h, s.pad_h, s.dil_h);
    s.Q = output_size("width", s.W, s.S, s.stride_w, s.pad_w, s.dil_w);
    // Images per GEMM: enough for kMinGemmColumns output pixels, then evened out over the groups this needs
    // (8 images of 13x13: 7 would reach 1024 pixels, so 2 groups, of 4 images each rather than 7 + 1).
    int64_t PQ = s.P * s.Q, N = std::max<int64_t>(s.N, 1);
    int64_t enough = std::min((kMinGemmColumns + PQ - 1) / PQ, N);
    int64_t groups = (N + enough - 1) / enough;
    s.images_per_gemm = (N + groups - 1) / groups;
    return s;
}

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, const Conv2dOptions& options) {
    check_dtype(x_in, DType::F32, "conv2d", "input");
    check_dim(x_in, 4, "conv2d", "input", "(N,C,H,W)");
    check_dtype(weight_in, DType::F32, "conv2d", "weight");
    check_dim(weight_in, 4, "conv2d", "weight", "(K,C,R,S)");
    check_same_device(x_in, weight_in, "conv2d");
    STRATA_CHECK(weight_in.numel() > 0, "conv2d: weight must not be empty, got shape ", weight_in.shape_string());
    STRATA_CHECK(x_in.size(1) == weight_in.size(1), "conv2d: input has ", x_in.size(1), " channels but weight expects ",
                 weight_in.size(1), " (input shape ", x_in.shape_string(), ", weight shape (K,C,R,S) ",
                 weight_in.shape_string(), ")");
    bool has_bias = bias_in.defined();
    if (has_bias) {
        check_dtype(bias_in, DType::F32, "conv2d", "bias");
        STRATA_CHECK(bias_in.shape() == Shape{weight_in.size(0)}, "conv2d: bias must have shape [", weight_in.size(0),
                     "] (the K of weight ", weight_in.shape_string(), "), got ", bias_in.shape_string());
        check_same_device(x_in, bias_in, "conv2d");
    }
    Conv2dShape s = conv2d_shape(x_in.shape(), weight_in.shape(), options);

    Tensor x = x_in.contiguous();
    Tensor weight = weight_in.contiguous();
    Tensor bias = has_bias ? bias_in.contiguous() : Tensor();
    Device device = x.device();
    s.implicit_gemm = conv2d_use_implicit_gemm(device);
    s.winograd = conv2d_use_winograd(s);
    Tensor y = empty({s.N, s.K, s.P, s.Q}, DType::F32, device);
    Tensor col = s.implicit_gemm && !s.winograd ? Tensor() : scratch(conv2d_scratch_col(s), device);  // (see conv2d.h)
    Tensor ycol = scratch(conv2d_scratch_ycol(s), device);
    conv2d_forward[device](y.f32(), x.f32(), weight.f32(), ptr(bias), ptr(col), ptr(ycol), s);

    if (any_requires_grad({x, weight, bias})) {
        Tensor saved_x = x.detach(), saved_w = weight.detach();
        record(y, "conv2d", {x, weight, bias},
               [saved_x, saved_w, options, algo = conv2d_algo()](const Tensor& dy, const std::vector<bool>& needs_grad) {
                   Conv2dAlgoScope same_algo(algo);  // the backward uses the algorithm choice of the forward
                   Conv2dGrads g =
                       conv2d_grads(dy, saved_x, saved_w, options, needs_grad[0], needs_grad[1], needs_grad[2]);
                   return std::vector<Tensor>{g.dx, g.dweight, g.dbias};
               });
    }
    return y;
}

Conv2dGrads conv2d_grads(const Tensor& dy_in, const Tensor& x_in, const Tensor& weight_in, const Conv2dOptions& options,
                         bool need_dx, bool need_dweight, bool need_dbias) {
    Conv2dShape s = conv2d_shape(x_in.shape(), weight_in.shape(), options);
    STRATA_CHECK(dy_in.shape() == Shape({s.N, s.K, s.P, s.Q}), "conv2d: the output gradient has shape ",
                 dy_in.shape_string(), ", expected ", shape_str({s.N, s.K, s.P, s.Q}));
    Tensor dy = dy_in.contiguous();
    Tensor x = x_in.contiguous();
    Tensor weight = weight_in.contiguous();
    Device device = dy.device();
    s.implicit_gemm = conv2d_use_implicit_gemm(device);
    s.winograd = conv2d_use_winograd(s);
    Conv2dGrads g;
    if (need_dx) g.dx = empty(x.shape(), DType::F32, device);
    if (need_dweight) g.dweight = empty(weight.shape(), DType::F32, device);
    if (need_dbias) g.dbias = empty({s.K}, DType::F32, device);
    Tensor col, ycol;
    if (need_dx || need_dweight) {
        col = scratch(conv2d_scratch_col(s), device);
        ycol = scratch(conv2d_scratch_ycol(s), device);
    }
    conv2d_backward[device](ptr(g.dx), ptr(g.dweight), ptr(g.dbias), dy.f32(), x.f32(), weight.f32(), ptr(col),
                            ptr(ycol), s);
    return g;
}

Conv2d::Conv2d(int64_t in_channels_, int64_t out_channels_, Size2 kernel_size_, Size2 stride, Size2 padding,
               Size2 dilation, bool with_bias)
    : in_channels(in_channels_),
      out_channels(out_channels_),
      kernel_size(kernel_size_),
      options{stride, padding, dilation} {
    STRATA_CHECK(in_channels > 0 && out_channels > 0, "Conv2d: in_channels and out_channels must be positive, got ",
                 in_channels, " and ", out_channels);
    STRATA_CHECK(kernel_size.h > 0 && kernel_size.w > 0, "Conv2d: kernel_size must be positive, got (", kernel_size.h,
                 ", ", kernel_size.w, ")");
    check_options(options);
    // PyTorch's reset_parameters: kaiming_uniform_(a = sqrt(5)) on the weight, whose bound
    // gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) simplifies to 1/sqrt(fan_in); the bias uses the same
    // bound. fan_in = C*R*S, the number of inputs of one output pixel.
    int64_t fan_in = in_channels * kernel_size.h * kernel_size.w;
    float bound = float(1.0 / std::sqrt(double(fan_in)));
    weight = register_parameter("weight",
                                rand_uniform({out_channels, in_channels, kernel_size.h, kernel_size.w}, -bound, bound));
    if (with_bias) bias = register_parameter("bias", rand_uniform({out_channels}, -bound, bound));
}

namespace {
Size2 size2(Attrs& attrs, const std::string& key, std::vector<int64_t> fallback) {
    std::vector<int64_t> v = attrs.get_ints(key, fallback, 2);
    return Size2(v[0], v[1]);
}

std::shared_ptr<Module> make_conv2d(Attrs& attrs) {
    int64_t in_channels = attrs.require_int("in_channels");
    int64_t out_channels = attrs.require_int("out_channels");
    std::vector<int64_t> kernel = attrs.get_ints("kernel_size", {}, 2);
    STRATA_CHECK(!kernel.empty(), "conv2d: missing required attribute 'kernel_size'");
    Size2 stride = size2(attrs, "stride", {1, 1});
    Size2 padding = size2(attrs, "padding", {0, 0});
    Size2 dilation = size2(attrs, "dilation", {1, 1});
    bool bias = attrs.get_bool("bias", true);
    return std::make_shared<Conv2d>(in_channels, out_channels, Size2(kernel[0], kernel[1]), stride, padding, dilation,
                                    bias);
}
}  // namespace

REGISTER_LAYER("conv2d", make_conv2d);

}  // namespace strata
