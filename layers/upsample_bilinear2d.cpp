// upsample_bilinear2d: bilinear resize of each (H, W) plane of an (N, C, H, W) tensor, as PyTorch's
// F.interpolate(mode='bilinear', antialias=False).
//
// The two axes are independent. Along one axis of input size `in` and output size `out`, output index o reads the
// source coordinate
//     align_corners = true:   src = o * (in - 1) / (out - 1)                (src = 0 when out == 1)
//     align_corners = false:  src = max((o + 0.5) * r - 0.5, 0),  r = in / out, or 1 / scale_factor when the
//                                                                  caller gave a scale factor (see NOTE)
// and blends its two neighbours
//     i0 = floor(src),  i1 = min(i0 + 1, in - 1),  l1 = src - i0,  l0 = 1 - l1.
// With (i0h, i1h, l0h, l1h) for the row and (i0w, i1w, l0w, l1w) for the column:
//
//   forward:   y[oh, ow] = l0h * (l0w * x[i0h, i0w] + l1w * x[i0h, i1w])
//                        + l1h * (l0w * x[i1h, i0w] + l1w * x[i1h, i1w])
//   backward:  dx[ih, iw] = sum over the outputs (oh, ow) that read (ih, iw) of (their weight for it) * dy[oh, ow]
//
// align_corners = true pins the corner pixels of input and output to each other: 60 -> 473 (473 = 8 * 59 + 1)
// samples every 1/8 of an input pixel exactly, which is why PSPNet's crop sizes are 8k + 1. PSPNet uses it for the
// pyramid branches (1x1, 2x2, 3x3, 6x6 -> 60x60) and the final x8 zoom.
//
// NOTE: the backward kernel sums into dx: it zeroes its plane of dx and then adds each output's four weighted
// gradients, because neighbouring outputs share source pixels. That sum is the op's own math (the transpose of the
// interpolation), not accumulation into an existing gradient: dx is still written in full, and the autograd engine
// alone accumulates across ops. The CPU kernel parallelises over (n, c) planes, so no two threads ever write the
// same element of dx; a GPU twin that gives one thread per output must use atomicAdd (or one thread per plane).
//
// NOTE: PyTorch 1.13's F.interpolate(scale_factor=s) (recompute_scale_factor left at None) computes the output
// size as floor(in * s) and then, for align_corners = false, maps coordinates with r = 1 / s instead of in / out;
// the two differ whenever in * s is not an integer (5 * 1.5 = 7.5 -> 7 outputs, r = 0.667 rather than 0.714). With
// align_corners = true the scale factor only sets the output size. And when an axis keeps its size (in == out)
// PyTorch copies it unchanged whatever the scale factor says; we do the same by using r = 1 there.
#include "layers/upsample_bilinear2d.h"

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<upsample_bilinear2d_forward_fn> upsample_bilinear2d_forward{"upsample_bilinear2d_forward"};
constinit KernelTable<upsample_bilinear2d_backward_fn> upsample_bilinear2d_backward{"upsample_bilinear2d_backward"};

namespace {

// The two source neighbours of one output index along one axis and their weights (w0 + w1 = 1).
struct LinearTap {
    int64_t i0, i1;
    float w0, w1;
};

LinearTap linear_tap(int64_t o, float scale, int64_t in_size, bool align_corners) {
    float src = align_corners ? scale * float(o) : std::max(scale * (float(o) + 0.5f) - 0.5f, 0.0f);
    LinearTap t;
    t.i0 = std::min(int64_t(src), in_size - 1);  // floor, as src >= 0
    t.i1 = t.i0 < in_size - 1 ? t.i0 + 1 : t.i0;
    t.w1 = std::clamp(src - float(t.i0), 0.0f, 1.0f);
    t.w0 = 1.0f - t.w1;
    return t;
}

// The taps of output columns ow0 .. ow0+count (count <= kTapChunk), computed once for all the rows a thread
// does: linear_tap converts and clamps, and per output pixel it cost more than the interpolation itself.
constexpr int64_t kTapChunk = 1024;

void column_taps(LinearTap* taps, int64_t ow0, int64_t count, float scale, int64_t in_size, bool align_corners) {
    for (int64_t i = 0; i < count; ++i) taps[i] = linear_tap(ow0 + i, scale, in_size, align_corners);
}

// y (planes, out_h, out_w) from x (planes, in_h, in_w). The threads split the output rows (rows are independent);
// each thread goes through its rows once per chunk of columns.
void upsample_bilinear2d_forward_cpu(float* y, const float* x, int64_t planes, int64_t in_h, int64_t in_w,
                                     int64_t out_h, int64_t out_w, float scale_h, float scale_w,
                                     bool align_corners) {
    int64_t grain = std::max<int64_t>(1, 4096 / out_w);
    parallel_for(0, planes * out_h, grain, [&](int64_t lo, int64_t hi) {
        LinearTap taps[kTapChunk];
        for (int64_t ow0 = 0; ow0 < out_w; ow0 += kTapChunk) {
            const int64_t count = std::min(kTapChunk, out_w - ow0);
            column_taps(taps, ow0, count, scale_w, in_w, align_corners);
            for (int64_t row = lo; row < hi; ++row) {
                int64_t p = row / out_h, oh = row % out_h;
                LinearTap th = linear_tap(oh, scale_h, in_h, align_corners);
                const float* x0 = x + (p * in_h + th.i0) * in_w;  // the two source rows
                const float* x1 = x + (p * in_h + th.i1) * in_w;
                float* yrow = y + row * out_w + ow0;
                for (int64_t i = 0; i < count; ++i) {
                    const LinearTap& tw = taps[i];
                    yrow[i] = th.w0 * (tw.w0 * x0[tw.i0] + tw.w1 * x0[tw.i1]) +
                              th.w1 * (tw.w0 * x1[tw.i0] + tw.w1 * x1[tw.i1]);
                }
            }
        }
    });
}

// One run of output columns that read input columns i0 and i1, with sum_ow w0*dy = a0 and sum_ow w1*dy = a1, added
// into the two input rows d0 and d1 of output row tap th.
void add_run(float* d0, float* d1, int64_t i0, int64_t i1, const LinearTap& th, float a0, float a1) {
    d0[i0] += th.w0 * a0;
    d0[i1] += th.w0 * a1;
    d1[i0] += th.w1 * a0;
    d1[i1] += th.w1 * a1;
}

// dx (planes, in_h, in_w) from dy (planes, out_h, out_w). One task per plane (see the NOTE on the sum).
void upsample_bilinear2d_backward_cpu(float* dx, const float* dy, int64_t planes, int64_t in_h, int64_t in_w,
                                      int64_t out_h, int64_t out_w, float scale_h, float scale_w,
                                      bool align_corners) {
    int64_t grain = std::max<int64_t>(1, 16384 / (out_h * out_w));
    parallel_for(0, planes, grain, [&](int64_t lo, int64_t hi) {
        // the column taps, once for all planes when a row fits in one chunk, else once per chunk of each row (the
        // order of each sum stays rows, then columns)
        LinearTap taps[kTapChunk];
        const bool one_chunk = out_w <= kTapChunk;
        if (one_chunk) column_taps(taps, 0, out_w, scale_w, in_w, align_corners);
        for (int64_t p = lo; p < hi; ++p) {
            float* dxp = dx + p * in_h * in_w;
            const float* dyp = dy + p * out_h * out_w;
            std::fill(dxp, dxp + in_h * in_w, 0.0f);
            for (int64_t oh = 0; oh < out_h; ++oh) {
                LinearTap th = linear_tap(oh, scale_h, in_h, align_corners);
                float* d0 = dxp + th.i0 * in_w;
                float* d1 = dxp + th.i1 * in_w;
                // Consecutive output columns share their two input columns (8 of them at PSPNet's 8x zoom): their
                // weighted gradients are summed in registers (a0, a1) and added to the four dx elements once per
                // run, instead of four read-modify-writes per output that chain through memory.
                int64_t run_i0 = -1, run_i1 = -1;
                float a0 = 0.0f, a1 = 0.0f;
                for (int64_t ow = 0; ow < out_w; ++ow) {
                    if (!one_chunk && ow % kTapChunk == 0)
                        column_taps(taps, ow, std::min(kTapChunk, out_w - ow), scale_w, in_w, align_corners);
                    const LinearTap& tw = taps[ow % kTapChunk];
                    if (tw.i0 != run_i0 || tw.i1 != run_i1) {
                        if (run_i0 >= 0) add_run(d0, d1, run_i0, run_i1, th, a0, a1);
                        run_i0 = tw.i0, run_i1 = tw.i1, a0 = a1 = 0.0f;
                    }
                    const float g = dyp[oh * out_w + ow];
                    a0 += tw.w0 * g;
                    a1 += tw.w1 * g;
                }
                add_run(d0, d1, run_i0, run_i1, th, a0, a1);
            }
        }
    });
}

}  // namespace

REGISTER_KERNEL(upsample_bilinear2d_forward, DeviceType::CPU, upsample_bilinear2d_forward_cpu);
REGISTER_KERNEL(upsample_bilinear2d_backward, DeviceType::CPU, upsample_bilinear2d_backward_cpu);

namespace {

// The factor r that maps an output index to a source coordinate along one axis (PyTorch's
// area_pixel_compute_scale); scale_factor = 0 means "none given".
float coordinate_scale(int64_t in, int64_t out, bool align_corners, double scale_factor) {
    if (in == out) return 1.0f;  // an unchanged axis is copied (NOTE at the top)
    if (align_corners) return out > 1 ? float(in - 1) / float(out - 1) : 0.0f;
    if (scale_factor > 0) return float(1.0 / scale_factor);
    return float(in) / float(out);
}

void check_input(const Tensor& x) {
    check_dtype(x, DType::F32, "upsample_bilinear2d", "input");
    check_dim(x, 4, "upsample_bilinear2d", "input", "(N,C,H,W)");
    STRATA_CHECK(x.size(2) > 0 && x.size(3) > 0, "upsample_bilinear2d: input must have H, W > 0, got shape ",
                 x.shape_string());
}

// The op behind both public functions. scale_h/scale_w are the caller's scale factors, 0 when it gave a size.
Tensor upsample(const Tensor& x_in, Size2 out, double scale_h, double scale_w, bool align_corners) {
    Tensor x = x_in.contiguous();
    int64_t n = x.size(0), c = x.size(1), in_h = x.size(2), in_w = x.size(3);
    float rh = coordinate_scale(in_h, out.h, align_corners, scale_h);
    float rw = coordinate_scale(in_w, out.w, align_corners, scale_w);
    Tensor y = empty({n, c, out.h, out.w}, DType::F32, x.device());
    upsample_bilinear2d_forward[x.device()](y.f32(), x.f32(), n * c, in_h, in_w, out.h, out.w, rh, rw,
                                            align_corners);
    if (any_requires_grad({x})) {
        record(y, "upsample_bilinear2d", {x},
               [n, c, in_h, in_w, out, rh, rw, align_corners](const Tensor& dy_in, const std::vector<bool>&) {
                   Tensor dy = dy_in.contiguous();
                   Tensor dx = empty({n, c, in_h, in_w}, DType::F32, dy.device());
                   upsample_bilinear2d_backward[dy.device()](dx.f32(), dy.f32(), n * c, in_h, in_w, out.h, out.w,
                                                             rh, rw, align_corners);
                   return std::vector<Tensor>{dx};
               });
    }
    return y;
}

}  // namespace

Tensor upsample_bilinear2d(const Tensor& x, Size2 output_size, bool align_corners) {
    check_input(x);
    STRATA_CHECK(output_size.h > 0 && output_size.w > 0,
                 "upsample_bilinear2d: output_size must be positive, got (", output_size.h, ", ", output_size.w, ")");
    return upsample(x, output_size, 0.0, 0.0, align_corners);
}

Tensor upsample_bilinear2d_scale(const Tensor& x, double scale_h, double scale_w, bool align_corners) {
    check_input(x);
    STRATA_CHECK(std::isfinite(scale_h) && std::isfinite(scale_w) && scale_h > 0 && scale_w > 0,
                 "upsample_bilinear2d: scale_factor must be positive, got (", scale_h, ", ", scale_w, ")");
    // floor(in * scale), computed in double as PyTorch does
    Size2 out(int64_t(double(x.size(2)) * scale_h), int64_t(double(x.size(3)) * scale_w));
    STRATA_CHECK(out.h > 0 && out.w > 0, "upsample_bilinear2d: scale_factor (", scale_h, ", ", scale_w,
                 ") makes the output of input ", x.shape_string(), " empty (", out.h, " x ", out.w, ")");
    return upsample(x, out, scale_h, scale_w, align_corners);
}

UpsampleBilinear2d::UpsampleBilinear2d(Size2 output_size, bool align_corners)
    : output_size_(output_size), align_corners_(align_corners) {
    STRATA_CHECK(output_size.h > 0 && output_size.w > 0, "UpsampleBilinear2d: size must be positive, got (",
                 output_size.h, ", ", output_size.w, ")");
}

UpsampleBilinear2d::UpsampleBilinear2d(double scale_h, double scale_w, bool align_corners)
    : scale_h_(scale_h), scale_w_(scale_w), align_corners_(align_corners) {
    STRATA_CHECK(std::isfinite(scale_h) && std::isfinite(scale_w) && scale_h > 0 && scale_w > 0,
                 "UpsampleBilinear2d: scale_factor must be positive, got (", scale_h, ", ", scale_w, ")");
}

Tensor UpsampleBilinear2d::forward(const Tensor& x) {
    if (scale_h_ > 0) return upsample_bilinear2d_scale(x, scale_h_, scale_w_, align_corners_);
    return upsample_bilinear2d(x, output_size_, align_corners_);
}

namespace {

// Attributes as nn.Upsample's: size (int or [h, w]) or scale_factor (number or [h, w]), align_corners.
std::shared_ptr<Module> make_upsample_bilinear2d(Attrs& attrs) {
    nlohmann::json size = attrs.get_json("size");
    nlohmann::json scale = attrs.get_json("scale_factor");
    bool align_corners = attrs.get_bool("align_corners", false);
    STRATA_CHECK(size.is_null() != scale.is_null(),
                 "upsample_bilinear2d: give exactly one of the attributes 'size' and 'scale_factor', got ",
                 size.is_null() ? "neither" : "both");
    if (!size.is_null()) {
        std::vector<int64_t> s = attrs.get_ints("size", {}, 2);
        return std::make_shared<UpsampleBilinear2d>(Size2(s[0], s[1]), align_corners);
    }
    bool ok = scale.is_number() ||
              (scale.is_array() && scale.size() == 2 && scale[0].is_number() && scale[1].is_number());
    STRATA_CHECK(ok, "upsample_bilinear2d: attribute 'scale_factor' must be a number or [h, w], got ", scale.dump());
    double sh = scale.is_number() ? scale.get<double>() : scale[0].get<double>();
    double sw = scale.is_number() ? scale.get<double>() : scale[1].get<double>();
    return std::make_shared<UpsampleBilinear2d>(sh, sw, align_corners);
}

}  // namespace

REGISTER_LAYER("upsample_bilinear2d", make_upsample_bilinear2d);

}  // namespace strata
