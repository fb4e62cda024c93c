// Winograd F(4x4, 3x3) for conv2d's stride-1 3x3 convolutions on the CPU (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016; docs/gemm.md section 8 derives it step by step). Dilated 3x3 convolutions
// go through their polyphase decomposition. It computes the forward and the input gradient (a 3x3 convolution of
// dy with the flipped, transposed filter); the weight gradient stays on implicit GEMM. Not a separate op: conv2d's
// CPU kernels (layers/conv2d.cpp) dispatch here when conv2d_use_winograd(s) says so. The CUDA conv2d keeps its
// GEMM path.
#pragma once

#include <cstdint>
#include <string>

#include "layers/conv2d.h"

namespace strata {

// Which algorithm the CPU conv2d uses for stride-1 3x3 kernels (the `conv_algo` config key). Process-wide.
//   auto      Winograd where it wins (C*K >= 512*512, tiles mostly used), implicit GEMM elsewhere
//   winograd  Winograd for every stride-1 3x3 conv it can run (tests use it at tiny shapes)
//   gemm      never Winograd: implicit GEMM (or im2col) as before
enum class Conv2dAlgo { kAuto, kWinograd, kGemm };
void set_conv2d_algo(Conv2dAlgo algo);
Conv2dAlgo conv2d_algo();
Conv2dAlgo parse_conv2d_algo(const std::string& name);  // "auto", "winograd" or "gemm"; else fails with the list
const char* conv2d_algo_name(Conv2dAlgo algo);

// Sets the algorithm for a scope and restores the previous one.
struct Conv2dAlgoScope {
    Conv2dAlgo previous;
    explicit Conv2dAlgoScope(Conv2dAlgo algo) : previous(conv2d_algo()) { set_conv2d_algo(algo); }
    ~Conv2dAlgoScope() { set_conv2d_algo(previous); }
};

// Whether Winograd computes the forward and input gradient of `s`: a 3x3 kernel with stride 1, on the path where
// implicit GEMM runs (s.implicit_gemm: the CPU, gemm=strata, not reproducible mode, implicit GEMM not turned off),
// and the algorithm choice above. The op sets s.winograd from it.
bool conv2d_use_winograd(const Conv2dShape& s);

// One convolution of the form Winograd computes: y (N, K, P, Q) = x (N, C, H, W) cross-correlated with a 3x3
// filter g (K, C, 3, 3), stride 1, padding pad (either sign: negative padding crops), dilation dil:
//     y[n,k,p,q] = sum_{c,r,s} g[k,c,r,s] * x[n, c, p - pad_h + r*dil_h, q - pad_w + s*dil_w]   (0 outside x)
// The weight tensor w is g itself (K, C, 3, 3), or, when `flipped`, (C, K, 3, 3) with g[k,c,r,s] = w[c,k,2-r,2-s]
// (the input gradient's filter, read from the forward's weight without a copy).
// chunk_floats bounds each of the three work buffers (the scratch is about 3x that): the tiles, output channels
// and input channels are processed in chunks that fit (tests make it small to exercise the chunking).
struct WinogradShape {
    int64_t N, C, H, W, K, P, Q;
    int64_t pad_h, pad_w, dil_h, dil_w;
    bool flipped;
    int64_t chunk_floats = int64_t(1) << 23;  // 32 MB
};

// The forward of s, and its input gradient as a convolution of dy (N, K, P, Q) into dx (N, C, H, W).
WinogradShape winograd_forward_shape(const Conv2dShape& s);
WinogradShape winograd_dx_shape(const Conv2dShape& s);

// Floats of scratch winograd_conv3x3_cpu needs for g (bounded: the tiles and channels are processed in chunks),
// and what conv2d needs for both of s's Winograd convolutions.
int64_t winograd_scratch_floats(const WinogradShape& g);
int64_t conv2d_winograd_scratch(const Conv2dShape& s);

// y = conv3x3(x, g) + bias (bias (K) may be null). scratch: winograd_scratch_floats(g) floats.
void winograd_conv3x3_cpu(float* y, const float* x, const float* w, const float* bias, float* scratch,
                          const WinogradShape& g);

}  // namespace strata
