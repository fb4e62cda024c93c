// linear's host-side plan, written once for every device: which GEMM (transposes, sizes, leading dimensions,
// beta) computes each product, and the bias broadcast before the forward's GEMM (layers/linear.cpp derives the
// math). A device provides only its primitives (LinearDevice); its kernels call these with them.
#pragma once

#include <cstdint>

namespace strata {

struct LinearDevice {
    // C = alpha * op(A) * op(B) + beta * C, row-major (gemm_cpu's contract)
    void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
    // y[r, j] = bias[j] for every row r of y (rows, out)
    void (*broadcast_rows)(float* y, const float* bias, int64_t rows, int64_t out);
};

// y: (rows, out), x: (rows, in), weight: (out, in), bias: (out) or null. y = x · weightᵀ + bias.
inline void linear_forward_plan(const LinearDevice& d, float* y, const float* x, const float* weight,
                                const float* bias, int64_t rows, int64_t in, int64_t out) {
    float beta = 0.0f;  // without a bias the GEMM overwrites y
    if (bias && rows > 0) {
        d.broadcast_rows(y, bias, rows, out);
        beta = 1.0f;
    }
    d.gemm(false, true, rows, out, in, 1.0f, x, in, weight, in, beta, y, out);
}

// dx: (rows, in), dy: (rows, out), weight: (out, in). dx = dy · weight.
inline void linear_backward_input_plan(const LinearDevice& d, float* dx, const float* dy, const float* weight,
                                       int64_t rows, int64_t in, int64_t out) {
    d.gemm(false, false, rows, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in);
}

// dweight: (out, in), dy: (rows, out), x: (rows, in). dweight = dyᵀ · x.
inline void linear_backward_weight_plan(const LinearDevice& d, float* dweight, const float* dy, const float* x,
                                        int64_t rows, int64_t in, int64_t out) {
    d.gemm(true, false, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dweight, in);
}

}  // namespace strata
