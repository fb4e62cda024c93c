// Winograd F(4x4, 3x3) convolution on the CPU (see conv2d_winograd.h; docs/gemm.md section 8 derives it).
//
// One output tile of 4x4 pixels of one output channel needs a 6x6 tile d of the input (4 + 3 - 1), per input
// channel. With the 6x6 transforms B, G and the 4x6 A below,
//     Y = Aᵀ [ sum_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
// is exactly the 4x4 correlation of d_c with the 3x3 filters g_c, summed over c (⊙: elementwise). The sum over c of
// an elementwise product is, for each of the 36 positions ξ of the 6x6 tile separately, a dot product over c; for
// all output channels k and all tiles t at once it is one GEMM per position:
//     M[ξ] (K, T) = U[ξ] (K, C) · V[ξ] (C, T),   U[ξ][k,c] = (G g_kc Gᵀ)[ξ],   V[ξ][c,t] = (Bᵀ d_ct B)[ξ]
// 36 GEMMs of K·C·T multiply-adds in all: 36 products per (k, c, tile) where the direct conv does 16 · 9 = 144,
// 4x fewer. The transforms cost O((K + C)·T) and O(K·C): few FLOPs next to the GEMMs' (see conv2d_use_winograd
// for where it pays in time).
//
// Dilation d (layer3/layer4 of PSPNet): output row p reads input rows p - pad + r·d. Split the output rows by
// their phase a = p mod d: the rows p = d·i + a of one phase read only input rows d·(i + r) + a - pad, i.e. a
// dilation-1 convolution on every d-th input row. So a dilated conv is d_h·d_w undilated convs on the phases of
// the input (polyphase decomposition), and nothing has to be copied: a tile of phase (a_h, a_w) simply gathers its
// 6x6 inputs with step d from x (zeros where that falls in the padding) and scatters its 4x4 outputs with step d.
//
// Work is done in chunks of tiles, of output channels and of input channels, so that U (36, K', C'), V (36, C', T')
// and M (36, K', T') hold at most g.chunk_floats floats each (32 MB): the 3x3 4096->512 classifier at 60x60 would
// need 300 MB for U and 265 MB for V over all channels. The chunks are as large as that allows, so each GEMM has
// a few hundred rows, columns and depth. The error bound and its measurement: tests/layers/test_conv2d_winograd.cpp.
// The transforms work on kLanes tiles (or filters) at a time, one per SIMD lane.
#include "layers/conv2d_winograd.h"

#include <algorithm>
#include <atomic>

#include "framework/blas.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

namespace {

constexpr int kTile = 4;                  // output tile (m in F(m x m, 3x3))
constexpr int kAlpha = kTile + 3 - 1;     // input tile: 6
constexpr int kPoints = kAlpha * kAlpha;  // 36 GEMMs
constexpr int kLanes = 16;                // tiles per transform call: one AVX-512 vector of floats
constexpr int64_t kMaxTiles = 512;        // tiles per chunk (GEMM columns): each GEMM packs all of U[ξ] per call

// Lavin & Gray's F(4x4, 3x3): interpolation points 0, ±1, ±2 and infinity.
constexpr float kBT[kAlpha][kAlpha] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1},
};
constexpr float kG[kAlpha][3] = {
    {1.0f / 4, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0, 0, 1},
};
constexpr float kAT[kTile][kAlpha] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0},
    {0, 1, 1, 4, 4, 0},
    {0, 1, -1, 8, -8, 1},
};

std::atomic<Conv2dAlgo> g_algo{Conv2dAlgo::kAuto};

// One axis (rows or columns) of the tiling: the output positions of phase a are a, a + d, a + 2d, ... < out, cut
// into tiles of kTile of them.
struct Axis {
    int64_t out, in, pad, dil;
};

int64_t phase_tiles(const Axis& x, int64_t a) {
    if (a >= x.out) return 0;
    const int64_t positions = (x.out - a + x.dil - 1) / x.dil;
    return (positions + kTile - 1) / kTile;
}

int64_t axis_tiles(const Axis& x) {
    int64_t n = 0;
    for (int64_t a = 0; a < x.dil; ++a) n += phase_tiles(x, a);
    return n;
}

// Tile `i` along the axis (the phases one after another): its first output position; the tile then covers outputs
// out0 + d*o (o < kTile) and reads inputs out0 - pad + d*j (j < kAlpha).
int64_t tile_origin(const Axis& x, int64_t i) {
    for (int64_t a = 0;; ++a) {
        const int64_t n = phase_tiles(x, a);
        if (i < n) return x.dil * kTile * i + a;
        i -= n;
    }
}

// Where one tile reads and writes: offsets of its input rows (h*W, or -1 for padding) and columns, of its output
// rows (p*Q, or -1 past the edge) and columns, and of its image in x and y.
struct TileInfo {
    int64_t x_image, y_image;
    int64_t in_row[kAlpha], in_col[kAlpha], out_row[kTile], out_col[kTile];
};

Axis rows_of(const WinogradShape& g) { return {g.P, g.H, g.pad_h, g.dil_h}; }
Axis cols_of(const WinogradShape& g) { return {g.Q, g.W, g.pad_w, g.dil_w}; }

TileInfo tile_info(const WinogradShape& g, int64_t t) {
    const Axis rows = rows_of(g), cols = cols_of(g);
    const int64_t per_row = axis_tiles(cols), per_image = axis_tiles(rows) * per_row;
    const int64_t n = t / per_image, p0 = tile_origin(rows, t % per_image / per_row),
                  q0 = tile_origin(cols, t % per_row);
    TileInfo info;
    info.x_image = n * g.C * g.H * g.W;
    info.y_image = n * g.K * g.P * g.Q;
    for (int j = 0; j < kAlpha; ++j) {
        const int64_t h = p0 - g.pad_h + g.dil_h * j, w = q0 - g.pad_w + g.dil_w * j;
        info.in_row[j] = h >= 0 && h < g.H ? h * g.W : -1;
        info.in_col[j] = w >= 0 && w < g.W ? w : -1;
    }
    for (int o = 0; o < kTile; ++o) {
        const int64_t p = p0 + g.dil_h * o, q = q0 + g.dil_w * o;
        info.out_row[o] = p < g.P ? p * g.Q : -1;
        info.out_col[o] = q < g.Q ? q : -1;
    }
    return info;
}

int64_t total_tiles(const WinogradShape& g) { return g.N * axis_tiles(rows_of(g)) * axis_tiles(cols_of(g)); }

// The chunk sizes: tiles (a multiple of kLanes unless all tiles fit in one chunk), output channels and input
// channels per chunk, each at most `most` and evened out over the chunks it takes.
struct Chunks {
    int64_t tiles, outputs, inputs;
};

int64_t even_chunk(int64_t n, int64_t most) {
    most = std::max<int64_t>(1, most);
    const int64_t count = (n + most - 1) / most;
    return (n + count - 1) / count;
}

Chunks chunks(const WinogradShape& g) {
    const int64_t T = total_tiles(g);
    const int64_t budget = std::max<int64_t>(g.chunk_floats / kPoints, 16 * kLanes);  // floats per point ξ
    int64_t tiles = even_chunk(T, std::min(kMaxTiles, budget / 16));
    if (tiles < T) tiles = (tiles + kLanes - 1) / kLanes * kLanes;
    // K' and C' up to budget / tiles (M and V), and K' * C' up to budget (U)
    const int64_t most = std::max<int64_t>(16, budget / tiles);
    const int64_t outputs = even_chunk(g.K, most);
    return {tiles, outputs, even_chunk(g.C, std::max<int64_t>(16, std::min(most, budget / outputs)))};
}

// ---- the three transforms, on kLanes tiles (filters) at a time: v[point][lane] ----

// The input and output transforms are the same sandwich Tᵀ x T with T = B (6x6) or A (6x4), done as two
// products on kLanes tiles at once. The sizes are template arguments so that the loops unroll completely and the
// zero coefficients of Bᵀ and Aᵀ (known at compile time) drop out of the arithmetic.

// out[i][j] = Σ_k L[i][k] in[k][j] for i < Rows, j < Cols (each lane; in has kAlpha rows of Cols).
template <int Rows, int Cols>
inline void left_product(float out[][kLanes], const float (&L)[Rows][kAlpha], const float in[][kLanes]) {
#pragma GCC unroll 6
    for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 6
        for (int j = 0; j < Cols; ++j) {
            float acc[kLanes] = {};
#pragma GCC unroll 6
            for (int k = 0; k < kAlpha; ++k) {
                if (L[i][k] == 0) continue;
#pragma omp simd
                for (int l = 0; l < kLanes; ++l) acc[l] += L[i][k] * in[k * Cols + j][l];
            }
            for (int l = 0; l < kLanes; ++l) out[i * Cols + j][l] = acc[l];
        }
}

// out[i][j] = Σ_k in[i][k] R[j][k] for i < Rows, j < Cols (each lane; in has Rows rows of kAlpha): in · Rᵀ.
template <int Rows, int Cols>
inline void right_product(float out[][kLanes], const float in[][kLanes], const float (&R)[Cols][kAlpha]) {
#pragma GCC unroll 6
    for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 6
        for (int j = 0; j < Cols; ++j) {
            float acc[kLanes] = {};
#pragma GCC unroll 6
            for (int k = 0; k < kAlpha; ++k) {
                if (R[j][k] == 0) continue;
#pragma omp simd
                for (int l = 0; l < kLanes; ++l) acc[l] += in[i * kAlpha + k][l] * R[j][k];
            }
            for (int l = 0; l < kLanes; ++l) out[i * Cols + j][l] = acc[l];
        }
}

// out = Bᵀ d B for each lane's 6x6 tile d.
void input_tile_transform(float out[kPoints][kLanes], const float d[kPoints][kLanes]) {
    float tmp[kPoints][kLanes];  // Bᵀ d
    left_product<kAlpha, kAlpha>(tmp, kBT, d);
    right_product<kAlpha, kAlpha>(out, tmp, kBT);
}

// out = G g Gᵀ for each lane's 3x3 filter g (g[r*3 + s][lane]).
void filter_transform(float out[kPoints][kLanes], const float g[9][kLanes]) {
    float tmp[kAlpha * 3][kLanes];  // G g
    for (int i = 0; i < kAlpha; ++i)
        for (int s = 0; s < 3; ++s)
#pragma omp simd
            for (int l = 0; l < kLanes; ++l)
                tmp[i * 3 + s][l] = kG[i][0] * g[s][l] + kG[i][1] * g[3 + s][l] + kG[i][2] * g[6 + s][l];
    for (int i = 0; i < kAlpha; ++i)
        for (int j = 0; j < kAlpha; ++j)
#pragma omp simd
            for (int l = 0; l < kLanes; ++l)
                out[i * kAlpha + j][l] =
                    tmp[i * 3][l] * kG[j][0] + tmp[i * 3 + 1][l] * kG[j][1] + tmp[i * 3 + 2][l] * kG[j][2];
}

// out = Aᵀ m A for each lane's 6x6 tile m (out: 4x4).
void output_tile_transform(float out[kTile * kTile][kLanes], const float m[kPoints][kLanes]) {
    float tmp[kTile * kAlpha][kLanes];  // Aᵀ m
    left_product<kTile, kAlpha>(tmp, kAT, m);
    right_product<kTile, kTile>(out, tmp, kAT);
}

// dst[l] = src[l] for l < lanes. A whole vector (the common case) is one store; std::copy of a run-time length
// would call memmove for 16 floats, which made the transforms several times slower than their arithmetic.
inline void copy_lanes(float* dst, const float* src, int64_t lanes) {
    if (lanes == kLanes) {
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) dst[l] = src[l];
    } else {
        for (int64_t l = 0; l < lanes; ++l) dst[l] = src[l];
    }
}

// ---- the kernels of one chunk ----

// U (36, kn, cn): U[ξ][k, c] = (G g_{k0+k, c0+c} Gᵀ)[ξ], the filters of output channels k0 .. k0+kn and input
// channels c0 .. c0+cn. Lanes: input channels.
void filter_transform_cpu(float* U, const float* w, int64_t k0, int64_t kn, int64_t c0, int64_t cn,
                          const WinogradShape& g) {
    const int64_t groups = (cn + kLanes - 1) / kLanes;
    parallel_for(0, kn * groups, 4, [&](int64_t lo, int64_t hi) {
        float taps[9][kLanes], out[kPoints][kLanes];
        for (int64_t item = lo; item < hi; ++item) {
            const int64_t k = k0 + item / groups, c1 = item % groups * kLanes;
            const int64_t lanes = std::min<int64_t>(kLanes, cn - c1);
            // filter (k, c) at w + k*step_k + c*step_c, its taps in order (flipped: backwards)
            const int64_t step_k = g.flipped ? 9 : g.C * 9, step_c = g.flipped ? g.K * 9 : 9;
            for (int l = 0; l < kLanes; ++l) {
                const int64_t c = c0 + c1 + std::min<int64_t>(l, lanes - 1);  // spare lanes repeat the last one
                const float* f = w + k * step_k + c * step_c;
                if (g.flipped) {
                    for (int rs = 0; rs < 9; ++rs) taps[rs][l] = f[8 - rs];
                } else {
                    for (int rs = 0; rs < 9; ++rs) taps[rs][l] = f[rs];
                }
            }
            filter_transform(out, taps);
            for (int xi = 0; xi < kPoints; ++xi)
                copy_lanes(U + (xi * kn + k - k0) * cn + c1, out[xi], lanes);
        }
    });
}

// V (36, cn, tn): V[ξ][c, t] = (Bᵀ d B)[ξ] for the input tile d of channel c0+c and tile t0+t. Lanes: tiles.
void input_transform_cpu(float* V, const float* x, int64_t c0, int64_t cn, int64_t t0, int64_t tn,
                         const WinogradShape& g) {
    const int64_t groups = (tn + kLanes - 1) / kLanes;
    constexpr int64_t kChannels = 16;  // channels per work item (the tile decoding is shared by them)
    const int64_t channel_blocks = (cn + kChannels - 1) / kChannels;
    parallel_for(0, groups * channel_blocks, 1, [&](int64_t lo, int64_t hi) {
        TileInfo tiles[kLanes];
        float d[kPoints][kLanes], out[kPoints][kLanes];
        for (int64_t item = lo; item < hi; ++item) {
            const int64_t t1 = item / channel_blocks * kLanes, lanes = std::min<int64_t>(kLanes, tn - t1);
            const int64_t cb = item % channel_blocks * kChannels, ce = std::min(cn, cb + kChannels);
            for (int l = 0; l < kLanes; ++l) tiles[l] = tile_info(g, t0 + t1 + std::min<int64_t>(l, lanes - 1));
            for (int64_t c = cb; c < ce; ++c) {
                for (int l = 0; l < kLanes; ++l) {
                    const TileInfo& ti = tiles[l];
                    const float* plane = x + ti.x_image + (c0 + c) * g.H * g.W;
                    for (int i = 0; i < kAlpha; ++i)
                        for (int j = 0; j < kAlpha; ++j)
                            d[i * kAlpha + j][l] =
                                ti.in_row[i] >= 0 && ti.in_col[j] >= 0 ? plane[ti.in_row[i] + ti.in_col[j]] : 0.0f;
                }
                input_tile_transform(out, d);
                for (int xi = 0; xi < kPoints; ++xi)
                    copy_lanes(V + (xi * cn + c) * tn + t1, out[xi], lanes);
            }
        }
    });
}

// Output channels k0 .. k0+kn of y's tiles t0 .. t0+tn = Aᵀ M A + bias, M (36, kn, tn). Lanes: tiles.
void output_transform_cpu(float* y, const float* M, const float* bias, int64_t k0, int64_t kn, int64_t t0, int64_t tn,
                          const WinogradShape& g) {
    const int64_t groups = (tn + kLanes - 1) / kLanes;
    parallel_for(0, groups, 1, [&](int64_t lo, int64_t hi) {
        TileInfo tiles[kLanes];
        float m[kPoints][kLanes], out[kTile * kTile][kLanes];
        for (int64_t group = lo; group < hi; ++group) {
            const int64_t t1 = group * kLanes, lanes = std::min<int64_t>(kLanes, tn - t1);
            for (int l = 0; l < lanes; ++l) tiles[l] = tile_info(g, t0 + t1 + l);
            for (int64_t k = k0; k < k0 + kn; ++k) {
                for (int xi = 0; xi < kPoints; ++xi) {
                    const float* src = M + (xi * kn + k - k0) * tn + t1;
                    copy_lanes(m[xi], src, lanes);
                    for (int64_t l = lanes; l < kLanes; ++l) m[xi][l] = 0.0f;
                }
                output_tile_transform(out, m);
                const float b = bias ? bias[k] : 0.0f;
                for (int l = 0; l < lanes; ++l) {
                    const TileInfo& ti = tiles[l];
                    float* plane = y + ti.y_image + k * g.P * g.Q;
                    for (int i = 0; i < kTile; ++i) {
                        if (ti.out_row[i] < 0) continue;
                        for (int j = 0; j < kTile; ++j)
                            if (ti.out_col[j] >= 0) plane[ti.out_row[i] + ti.out_col[j]] = out[i * kTile + j][l] + b;
                    }
                }
            }
        }
    });
}

}  // namespace

void set_conv2d_algo(Conv2dAlgo algo) { g_algo = algo; }
Conv2dAlgo conv2d_algo() { return g_algo; }

const char* conv2d_algo_name(Conv2dAlgo algo) {
    return algo == Conv2dAlgo::kAuto ? "auto" : algo == Conv2dAlgo::kWinograd ? "winograd" : "gemm";
}

Conv2dAlgo parse_conv2d_algo(const std::string& name) {
    for (Conv2dAlgo a : {Conv2dAlgo::kAuto, Conv2dAlgo::kWinograd, Conv2dAlgo::kGemm})
        if (name == conv2d_algo_name(a)) return a;
    STRATA_FAIL("conv_algo: unknown algorithm '", name,
                "'; the choices are auto (Winograd where it wins), winograd (every stride-1 3x3 conv) and gemm");
}

bool conv2d_use_winograd(const Conv2dShape& s) {
    const Conv2dAlgo algo = conv2d_algo();
    if (algo == Conv2dAlgo::kGemm || !s.implicit_gemm) return false;
    if (s.R != 3 || s.S != 3 || s.stride_h != 1 || s.stride_w != 1) return false;
    if (algo == Conv2dAlgo::kWinograd) return true;
    // auto: the transforms, and the passes over the chunks, cost O((C + K)·T) against the GEMMs' O(C·K·T), so it
    // needs many channels: on the 2-core Zen 5 of docs/PERFORMANCE.md it won on every PSPNet-50 3x3 conv at 60x60,
    // but at 29x29 only from 512->512 up (256->256 and 128->128 lost). And a tile computes 16 outputs whether
    // they exist or not, so maps that fill less than half their tiles do not pay either.
    const WinogradShape g = winograd_forward_shape(s);
    const double used = double(g.N * g.P * g.Q) / double(total_tiles(g) * kTile * kTile);
    return s.C * s.K >= 512 * 512 && std::min(s.C, s.K) >= 32 && used >= 0.5;
}

WinogradShape winograd_forward_shape(const Conv2dShape& s) {
    return {s.N, s.C, s.H, s.W, s.K, s.P, s.Q, s.pad_h, s.pad_w, s.dil_h, s.dil_w, false};
}

// dx[n,c,h,w] = sum_{k,r,s} W[k,c,r,s] * dy[n, k, h + pad_h - r*dil_h, w + pad_w - s*dil_w] (conv2d.cpp's dcol and
// col2im, written as a gather). With r' = 2 - r the row read is h - (2*dil_h - pad_h) + r'*dil_h: a correlation of
// dy with the filter W[k,c,2-r',2-s'] (flipped, input and output channels swapped), padding 2*dil - pad, same
// dilation; its output has (P + 2*(2*dil_h - pad_h) - 2*dil_h) = H rows.
WinogradShape winograd_dx_shape(const Conv2dShape& s) {
    return {s.N, s.K, s.P, s.Q, s.C, s.H, s.W, 2 * s.dil_h - s.pad_h, 2 * s.dil_w - s.pad_w, s.dil_h, s.dil_w, true};
}

int64_t winograd_scratch_floats(const WinogradShape& g) {
    const Chunks c = chunks(g);
    return kPoints * (c.outputs * c.inputs + c.inputs * c.tiles + c.outputs * c.tiles);
}

int64_t conv2d_winograd_scratch(const Conv2dShape& s) {
    return std::max(winograd_scratch_floats(winograd_forward_shape(s)), winograd_scratch_floats(winograd_dx_shape(s)));
}

void winograd_conv3x3_cpu(float* y, const float* x, const float* w, const float* bias, float* scratch,
                          const WinogradShape& g) {
    STRATA_CHECK(scratch, "winograd_conv3x3: scratch is null but ", winograd_scratch_floats(g), " floats are needed");
    const Chunks ch = chunks(g);
    const int64_t T = total_tiles(g);
    float* U = scratch;                                  // (36, outputs, inputs)
    float* V = U + kPoints * ch.outputs * ch.inputs;     // (36, inputs, tiles)
    float* M = V + kPoints * ch.inputs * ch.tiles;       // (36, outputs, tiles)
    const bool one_u = ch.outputs == g.K && ch.inputs == g.C;  // U of all channels: transformed once
    const bool one_v = ch.inputs == g.C;                       // V of all input channels: once per tile chunk
    for (int64_t t0 = 0; t0 < T; t0 += ch.tiles) {
        const int64_t tn = std::min(ch.tiles, T - t0);
        if (one_v) input_transform_cpu(V, x, 0, g.C, t0, tn, g);
        for (int64_t k0 = 0; k0 < g.K; k0 += ch.outputs) {
            const int64_t kn = std::min(ch.outputs, g.K - k0);
            for (int64_t c0 = 0; c0 < g.C; c0 += ch.inputs) {
                const int64_t cn = std::min(ch.inputs, g.C - c0);
                if (!one_u || t0 == 0) filter_transform_cpu(U, w, k0, kn, c0, cn, g);
                if (!one_v) input_transform_cpu(V, x, c0, cn, t0, tn, g);
                // M (+)= U · V, one GEMM per point ξ, each on one thread (no barrier inside a GEMM)
                const float beta = c0 == 0 ? 0.0f : 1.0f;
                parallel_for(0, kPoints, 1, [&](int64_t lo, int64_t hi) {
                    for (int64_t xi = lo; xi < hi; ++xi)
                        gemm_cpu(false, false, kn, tn, cn, 1.0f, U + xi * kn * cn, cn, V + xi * cn * tn, tn, beta,
                                 M + xi * kn * tn, tn);
                });
            }
            output_transform_cpu(y, M, bias, k0, kn, t0, tn, g);
        }
    }
}

}  // namespace strata
