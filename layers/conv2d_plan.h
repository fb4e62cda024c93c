// conv2d's host-side plan, written once for every device: the loop over groups of images and the order of
// im2col, GEMM, col2im and the layout copies (layers/conv2d.cpp derives the math). A device provides only its
// primitives (Conv2dDevice below: the GEMM, im2col, col2im, the copies, the bias gradient, and optionally the
// implicit GEMMs); its conv2d_forward / conv2d_backward kernels call the plan with them.
#pragma once

#include <cstdint>

#include "layers/conv2d.h"

namespace strata {

// 1x1 kernel, stride 1, no padding: col is x itself (dilation is irrelevant for a single tap).
bool conv2d_is_pointwise(const Conv2dShape& s);

// What a device supplies; every pointer is device memory, shapes as in conv2d.cpp.
struct Conv2dDevice {
    // C = alpha * op(A) * op(B) + beta * C, row-major (gemm_cpu's contract)
    void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
    // col (C*R*S, images*P*Q) from x (images, C, H, W)
    void (*im2col)(float* col, const float* x, int64_t images, const Conv2dShape& s);
    // channels c0 .. c0+channels of dx (images, C, H, W) from their rows of dcol (channels*R*S, images*P*Q)
    void (*col2im)(float* dx, const float* dcol, int64_t images, int64_t c0, int64_t channels, const Conv2dShape& s);
    // y (images, K, PQ) = ycol (K, images*PQ) + bias (may be null; ycol may be y itself for one image)
    void (*ycol_to_y)(float* y, const float* ycol, const float* bias, int64_t images, int64_t K, int64_t PQ);
    // ycol (K, images*PQ) = y (images, K, PQ)
    void (*y_to_ycol)(float* ycol, const float* y, int64_t images, int64_t K, int64_t PQ);
    // dbias (K) = sum of dy (N, K, P, Q) over n, p, q
    void (*bias_grad)(float* dbias, const float* dy, const Conv2dShape& s);
    // Only where s.implicit_gemm can be true (the CPU): the GEMMs with col packed from x.
    //   out (K, images*PQ) = weight (K, CRS) · col(x)
    void (*forward_implicit)(float* out, const float* weight, const float* x, int64_t images, const Conv2dShape& s);
    //   dweight (K, CRS) = dy (K, images*PQ) · col(x)ᵀ + beta * dweight
    void (*weight_grad_implicit)(float* dweight, const float* dy, const float* x, int64_t images, float beta,
                                 const Conv2dShape& s);
};

// The forward and backward of conv2d.h's kernel contract, on `device`'s primitives.
void conv2d_forward_plan(const Conv2dDevice& device, float* y, const float* x, const float* weight, const float* bias,
                         float* col, float* ycol, const Conv2dShape& s);
void conv2d_backward_plan(const Conv2dDevice& device, float* dx, float* dweight, float* dbias, const float* dy,
                          const float* x, const float* weight, float* col, float* ycol, const Conv2dShape& s);

}  // namespace strata
