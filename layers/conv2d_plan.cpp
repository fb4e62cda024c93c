// conv2d's host-side plan for every device (see conv2d_plan.h; the math is derived in conv2d.cpp).
#include "layers/conv2d_plan.h"

#include <algorithm>

#include "framework/check.h"

namespace strata {

bool conv2d_is_pointwise(const Conv2dShape& s) {
    return s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

namespace {

// The scratch pointers against conv2d.h's contract (the op allocates them from conv2d_scratch_col/_ycol).
void check_scratch(const Conv2dDevice& d, const float* col, const float* ycol, const Conv2dShape& s, bool forward,
                   const char* kernel) {
    const bool col_needed = conv2d_scratch_col(s) > 0 && !(forward && s.implicit_gemm);
    STRATA_CHECK(col || !col_needed, kernel, ": col is null but ", conv2d_scratch_col(s),
                 " floats of im2col scratch are needed");
    STRATA_CHECK(ycol || s.images_per_gemm == 1, kernel, ": ycol is null but images_per_gemm is ", s.images_per_gemm);
    STRATA_CHECK(!s.implicit_gemm || (d.forward_implicit && d.weight_grad_implicit), kernel,
                 ": implicit GEMM asked of a device that has no implicit GEMM primitives");
}

}  // namespace

void conv2d_forward_plan(const Conv2dDevice& d, float* y, const float* x, const float* weight, const float* bias,
                         float* col, float* ycol, const Conv2dShape& s) {
    check_scratch(d, col, ycol, s, true, "conv2d_forward");
    const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q;
    for (int64_t n0 = 0; n0 < s.N; n0 += s.images_per_gemm) {
        const int64_t g = std::min(s.images_per_gemm, s.N - n0);  // images in this GEMM
        const float* x_g = x + n0 * s.C * s.H * s.W;
        float* y_g = y + n0 * s.K * PQ;
        // (K, g*PQ) = weight (K, CRS) · col (CRS, g*PQ); one image's result is already in y's layout. col is x
        // itself for a pointwise conv of one image, packed from x by the GEMM with implicit GEMM, else built.
        float* out = g == 1 ? y_g : ycol;
        if (conv2d_is_pointwise(s) && g == 1) {
            d.gemm(false, false, s.K, PQ, CRS, 1.0f, weight, CRS, x_g, PQ, 0.0f, out, PQ);
        } else if (s.implicit_gemm) {
            d.forward_implicit(out, weight, x_g, g, s);
        } else {
            d.im2col(col, x_g, g, s);
            d.gemm(false, false, s.K, g * PQ, CRS, 1.0f, weight, CRS, col, g * PQ, 0.0f, out, g * PQ);
        }
        if (g > 1 || bias) d.ycol_to_y(y_g, out, bias, g, s.K, PQ);
    }
}

void conv2d_backward_plan(const Conv2dDevice& d, float* dx, float* dweight, float* dbias, const float* dy,
                          const float* x, const float* weight, float* col, float* ycol, const Conv2dShape& s) {
    const int64_t CRS = s.C * s.R * s.S, RS = s.R * s.S, PQ = s.P * s.Q;
    if (dbias) d.bias_grad(dbias, dy, s);
    if (!dx && !dweight) return;
    check_scratch(d, col, ycol, s, false, "conv2d_backward");
    for (int64_t n0 = 0; n0 < s.N; n0 += s.images_per_gemm) {
        const int64_t g = std::min(s.images_per_gemm, s.N - n0);
        const bool pointwise = conv2d_is_pointwise(s) && g == 1;
        const float* x_g = x + n0 * s.C * s.H * s.W;
        float* dx_g = dx ? dx + n0 * s.C * s.H * s.W : nullptr;
        // dy of these g images as a (K, g*PQ) matrix
        const float* dy_g = dy + n0 * s.K * PQ;
        if (g > 1) {
            d.y_to_ycol(ycol, dy_g, g, s.K, PQ);
            dy_g = ycol;
        }
        if (dweight) {
            // dweight (K, CRS) (+)= dy_g (K, g*PQ) · col (CRS, g*PQ)ᵀ; the first group overwrites.
            const float beta = n0 == 0 ? 0.0f : 1.0f;
            if (pointwise) {
                d.gemm(false, true, s.K, CRS, PQ, 1.0f, dy_g, PQ, x_g, PQ, beta, dweight, CRS);
            } else if (s.implicit_gemm) {
                d.weight_grad_implicit(dweight, dy_g, x_g, g, beta, s);
            } else {
                d.im2col(col, x_g, g, s);
                d.gemm(false, true, s.K, CRS, g * PQ, 1.0f, dy_g, g * PQ, col, g * PQ, beta, dweight, CRS);
            }
        }
        if (dx && pointwise) {
            // dx_g (C, PQ) = weightᵀ (C, K) · dy_g (K, PQ): dcol is dx itself
            d.gemm(true, false, s.C, PQ, s.K, 1.0f, weight, s.C, dy_g, PQ, 0.0f, dx_g, PQ);
        } else if (dx) {
            // per chunk of channels c0 .. c0+cc (all of them without implicit GEMM): dcol (cc*RS, g*PQ) =
            // weightᵀ's rows of those channels (cc*RS, K) · dy_g (K, g*PQ), then col2im into their planes of dx
            const int64_t chunk = conv2d_dx_chunk_channels(s);
            for (int64_t c0 = 0; c0 < s.C; c0 += chunk) {
                const int64_t cc = std::min(chunk, s.C - c0);
                d.gemm(true, false, cc * RS, g * PQ, s.K, 1.0f, weight + c0 * RS, CRS, dy_g, g * PQ, 0.0f, col,
                       g * PQ);
                d.col2im(dx_g, col, g, c0, cc, s);
            }
        }
    }
}

}  // namespace strata
