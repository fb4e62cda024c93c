// conv2d on the GPU: the CUDA twins of conv2d_forward and conv2d_backward (layers/conv2d.h), by im2col + cuBLAS
// GEMM. The host-side plan (the loop over groups of images, the order of the steps below) is the one the CPU runs,
// layers/conv2d_plan.cpp; this file supplies its primitives: the GEMM (cuBLAS), im2col, col2im, the two layout
// permutations and the bias gradient (the math, the column layout and the two shortcuts are explained in
// layers/conv2d.cpp). The GPU has no implicit GEMM (s.implicit_gemm is false on it), so dx takes one chunk of all
// C channels. With G = s.images_per_gemm images per GEMM, CRS = C*R*S and PQ = P*Q:
//
//   forward, per group of g <= G images:
//     col (CRS, g*PQ)   = im2col(x of the g images)              skipped when col is null (see below)
//     (K, g*PQ)         = weight (K, CRS) · col                   cuBLAS; into y directly when g == 1, else ycol
//     y                 = that product rearranged to (g, K, PQ), + bias[k]
//   backward, per group:
//     ycol              = dy of the g images as (K, g*PQ)         only when g > 1
//     dweight (K, CRS) (+)= dy_g · colᵀ                            cuBLAS; the first group overwrites (beta = 0)
//     dcol (CRS, g*PQ)  = weightᵀ · dy_g                          cuBLAS; then dx = col2im(dcol)
//     dbias[k]          = sum over n, p, q of dy[n, k, p, q]      once, over the whole batch
//
// The scratch contract of conv2d.h: col is null exactly when a 1x1 kernel with stride 1 and no padding runs one
// image per GEMM; then x itself is the GEMM's right operand and dx its output. Otherwise col is im2col's matrix
// of G images. ycol is null when G == 1.
//
// Thread mapping (all grid-stride loops, 256 threads per block):
//   im2col      one thread per (image, c, p, q); it writes the R*S entries of its output pixel, one per row of col
//               (neighbouring threads write neighbouring columns: coalesced stores; loads coalesced at stride 1).
//   col2im      one thread per element of dx: a GATHER, not Caffe's scatter with atomics. The thread visits the
//               taps (r, s) that read its element (h + pad - r*dil divisible by the stride, output pixel in range)
//               and adds their dcol entries in (r, s) order, the CPU's order: no atomics, a fixed summation order,
//               so the result is deterministic (and equal to the CPU's for the same dcol).
//   ycol <-> y  one thread per element, a pure permutation (plus the bias).
//   dbias       one block per output channel k (grid-stride over k): each thread sums a strided share of every
//               plane dy[n, k] in double, then a block reduction (cuda/block_reduce.h), like the CPU's double sum.
// Bounds: the GEMMs are compute-bound at PSPNet's sizes (cuBLAS SGEMM ~50 TFLOP/s on an H100); im2col, col2im and
// the permutations are memory-bound (one load and one store per element moved); dbias reads dy once, but with
// one block per channel it is latency-bound when there are few channels.
//
// NOTE: index arithmetic is 64-bit: col already holds C*R*S*P*Q = 1.3e8 floats for one image of PSPNet's 3x3
// 4096->512 classifier at 60x60, and 2^31 elements (8 GB) is within a GPU's memory. The integer divisions that
// decode an index cost tens of instructions each on a GPU: once per thread, which for im2col and col2im is
// amortised over the R*S taps, for the permutations paid per element (see the performance notes).
#include <algorithm>

#include "cuda/backend.h"
#include "cuda/block_reduce.h"
#include "cuda/gemm.h"
#include "layers/conv2d.h"
#include "layers/conv2d_plan.h"

namespace strata {

namespace {

constexpr int kBiasThreads = 256;  // threads of the dbias reduction (a multiple of 32)

// col (C*R*S, images*P*Q) from x (images, C, H, W):
//   col[(c*R + r)*S + t, g*P*Q + p*Q + q] = x[g, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + t*dil_w]
// and 0 where that position is padding. Thread i < images*C*P*Q handles output pixel (g, c, p, q).
__global__ void im2col_kernel(float* col, const float* x, int64_t images, Conv2dShape s) {
    const int64_t PQ = s.P * s.Q, cols = images * PQ, n = images * s.C * PQ;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t q = i % s.Q, p = i / s.Q % s.P, gc = i / PQ;  // gc = g*C + c
        int64_t g = gc / s.C, c = gc % s.C;
        const float* plane = x + gc * s.H * s.W;
        float* dst = col + c * s.R * s.S * cols + g * PQ + p * s.Q + q;  // row (c, 0, 0)
        int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
        for (int64_t r = 0; r < s.R; ++r) {
            int64_t h = h0 + r * s.dil_h;
            bool row_inside = h >= 0 && h < s.H;
            for (int64_t t = 0; t < s.S; ++t, dst += cols) {
                int64_t w = w0 + t * s.dil_w;
                *dst = row_inside && w >= 0 && w < s.W ? plane[h * s.W + w] : 0.0f;
            }
        }
    }
}

// dx (images, C, H, W) from dcol (C*R*S, images*P*Q), the transpose of im2col: each x element gets the sum of the
// dcol entries copied from it. Thread i < images*C*H*W handles dx element (g, c, h, w) and gathers: tap (r, t)
// read it from output pixel (p, q) when h = p*stride_h - pad_h + r*dil_h (likewise w), i.e. when
// h + pad_h - r*dil_h is >= 0, divisible by stride_h, and its quotient p < P.
__global__ void col2im_kernel(float* dx, const float* dcol, int64_t images, Conv2dShape s) {
    const int64_t PQ = s.P * s.Q, cols = images * PQ, n = images * s.C * s.H * s.W;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t w = i % s.W, h = i / s.W % s.H, gc = i / (s.H * s.W);
        int64_t g = gc / s.C, c = gc % s.C;
        const float* src = dcol + c * s.R * s.S * cols + g * PQ;  // row (c, 0, 0), this image's columns
        float sum = 0.0f;
        for (int64_t r = 0; r < s.R; ++r) {
            int64_t hp = h + s.pad_h - r * s.dil_h;  // p * stride_h when tap r reads row h
            if (hp < 0) break;                       // and smaller still for every later r
            if (hp % s.stride_h != 0 || hp / s.stride_h >= s.P) continue;
            int64_t p = hp / s.stride_h;
            for (int64_t t = 0; t < s.S; ++t) {
                int64_t wq = w + s.pad_w - t * s.dil_w;
                if (wq < 0) break;
                if (wq % s.stride_w != 0 || wq / s.stride_w >= s.Q) continue;
                sum += src[(r * s.S + t) * cols + p * s.Q + wq / s.stride_w];
            }
        }
        dx[i] = sum;
    }
}

// y (images, K, PQ) = ycol (K, images*PQ) rearranged, + bias[k] (bias may be null). With images == 1 the layouts
// agree and ycol may be y itself: every thread reads and writes only its own element.
__global__ void ycol_to_y_kernel(float* y, const float* ycol, const float* bias, int64_t images, int64_t K,
                                 int64_t PQ) {
    const int64_t n = images * K * PQ;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t pq = i % PQ, gk = i / PQ;
        int64_t g = gk / K, k = gk % K;
        float b = bias ? bias[k] : 0.0f;
        y[i] = ycol[(k * images + g) * PQ + pq] + b;
    }
}

// ycol (K, images*PQ) = y (images, K, PQ) rearranged: the inverse permutation, to gather dy.
__global__ void y_to_ycol_kernel(float* ycol, const float* y, int64_t images, int64_t K, int64_t PQ) {
    const int64_t n = images * K * PQ;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t pq = i % PQ, kg = i / PQ;
        int64_t k = kg / images, g = kg % images;
        ycol[i] = y[(g * K + k) * PQ + pq];
    }
}

// dbias[k] = sum over n < N and pq < PQ of dy[n, k, pq]. Block b handles k = b, b + gridDim.x, ... (the same trip
// count for the whole block, as block_sum needs); its threads stride along each plane dy[n, k, :] (coalesced, and
// no integer division per element). Maps smaller than the block leave threads idle, but the only convs with a bias
// in PSPNet are the classifiers, on full-size maps.
__global__ void bias_grad_kernel(float* dbias, const float* dy, int64_t N, int64_t K, int64_t PQ) {
    __shared__ double partials[33];
    for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n) {
            const float* plane = dy + (n * K + k) * PQ;
            for (int64_t pq = threadIdx.x; pq < PQ; pq += blockDim.x) acc += plane[pq];
        }
        double total = block_sum(acc, partials);
        if (threadIdx.x == 0) dbias[k] = float(total);
    }
}

void im2col(float* col, const float* x, int64_t images, const Conv2dShape& s) {
    int64_t n = images * s.C * s.P * s.Q;
    CUEMU_LAUNCH(im2col_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), col, x, images, s);
    CUDA_CHECK_LAUNCH();
}

void col2im(float* dx, const float* dcol, int64_t images, int64_t c0, int64_t channels, const Conv2dShape& s) {
    STRATA_CHECK(c0 == 0 && channels == s.C, "conv2d_backward (cuda): col2im runs all ", s.C,
                 " channels at once (no implicit GEMM on the GPU), got channels ", c0, "..", c0 + channels);
    int64_t n = images * s.C * s.H * s.W;
    CUEMU_LAUNCH(col2im_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), dx, dcol, images, s);
    CUDA_CHECK_LAUNCH();
}

void ycol_to_y(float* y, const float* ycol, const float* bias, int64_t images, int64_t K, int64_t PQ) {
    int64_t n = images * K * PQ;
    CUEMU_LAUNCH(ycol_to_y_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, ycol, bias, images,
                 K, PQ);
    CUDA_CHECK_LAUNCH();
}

void y_to_ycol(float* ycol, const float* y, int64_t images, int64_t K, int64_t PQ) {
    int64_t n = images * K * PQ;
    CUEMU_LAUNCH(y_to_ycol_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), ycol, y, images, K,
                 PQ);
    CUDA_CHECK_LAUNCH();
}

void bias_grad(float* dbias, const float* dy, const Conv2dShape& s) {
    if (s.K == 0) return;
    unsigned blocks = unsigned(std::min<int64_t>(s.K, 65535));
    CUEMU_LAUNCH(bias_grad_kernel, blocks, kBiasThreads, 0, cuda_current_stream(), dbias, dy, s.N, s.K, s.P * s.Q);
    CUDA_CHECK_LAUNCH();
}

const Conv2dDevice kCuda{gemm_cuda, im2col, col2im, ycol_to_y, y_to_ycol, bias_grad, nullptr, nullptr};

// The kernels of conv2d.h: the shared plan on the GPU's primitives.
void conv2d_forward_cuda(float* y, const float* x, const float* weight, const float* bias, float* col, float* ycol,
                         const Conv2dShape& s) {
    conv2d_forward_plan(kCuda, y, x, weight, bias, col, ycol, s);
}

void conv2d_backward_cuda(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                          const float* weight, float* col, float* ycol, const Conv2dShape& s) {
    conv2d_backward_plan(kCuda, dx, dweight, dbias, dy, x, weight, col, ycol, s);
}

}  // namespace

REGISTER_KERNEL(conv2d_forward, DeviceType::CUDA, conv2d_forward_cuda);
REGISTER_KERNEL(conv2d_backward, DeviceType::CUDA, conv2d_backward_cuda);

}  // namespace strata
