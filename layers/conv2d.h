// conv2d: 2-D convolution (cross-correlation, as in PyTorch) of an NCHW batch, with stride, padding and dilation.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

struct Conv2dOptions {
    Size2 stride = 1;
    Size2 padding = 0;   // zeros added on each side
    Size2 dilation = 1;  // spacing between kernel taps
};

// x: (N, C, H, W), weight: (K, C, R, S), bias: (K) or undefined (no bias). Returns (N, K, P, Q) with
//   P = (H + 2*padding.h - dilation.h*(R-1) - 1) / stride.h + 1   (Q likewise with W, S and the .w fields).
// Example: conv2d(x, w, b, {.stride = 2, .padding = 1}).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& options = {});

// The backward as a plain function: what conv2d's autograd node runs (bench/conv2d_bench.cpp times it directly).
// Only the gradients asked for are computed; the others come back undefined.
struct Conv2dGrads {
    Tensor dx, dweight, dbias;
};
Conv2dGrads conv2d_grads(const Tensor& dy, const Tensor& x, const Tensor& weight, const Conv2dOptions& options,
                         bool need_dx, bool need_dweight, bool need_dbias);

// The Conv2d module (registry name "conv2d"; attributes in_channels, out_channels, kernel_size, stride = 1,
// padding = 0, dilation = 1, bias = true; sizes are one integer or [h, w]). Parameters "weight" (K, C, R, S) and
// "bias" (K), both initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C*R*S, as in PyTorch.
class Conv2d : public Module {
public:
    Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1, Size2 padding = 0,
           Size2 dilation = 1, bool bias = true);
    Tensor forward(const Tensor& x) override { return conv2d(x, weight, bias, options); }
    std::string type_name() const override { return "Conv2d"; }

    int64_t in_channels, out_channels;
    Size2 kernel_size;
    Conv2dOptions options;
    Tensor weight;
    Tensor bias;  // undefined when built with bias = false
};

// ---- kernels ----

// Every size of one convolution, as the kernels see them.
struct Conv2dShape {
    int64_t N, C, H, W;  // input x (N, C, H, W)
    int64_t K, R, S;     // weight (K, C, R, S)
    int64_t P, Q;        // output y (N, K, P, Q)
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    // G: how many images share one GEMM. 1 for ordinary maps; more when P*Q is so small that a per-image GEMM
    // would be tiny (PSPNet's pooled 1x1..6x6 maps, a batch of 13x13 maps). Chosen by conv2d_shape() below.
    int64_t images_per_gemm;
    // CPU only: the GEMMs pack the im2col matrix straight from x, panel by panel (implicit GEMM), so that no col
    // buffer exists in the forward and the weight gradient; the input gradient then goes through col in chunks of
    // channels. Set by the op (conv2d_use_implicit_gemm), false from conv2d_shape().
    bool implicit_gemm = false;
    // CPU only: the forward and the input gradient run as Winograd F(4x4, 3x3) (layers/conv2d_winograd.h), the
    // weight gradient as implicit GEMM. Set by the op (conv2d_use_winograd), false from conv2d_shape().
    bool winograd = false;
};

// The sizes for input shape x (N, C, H, W), weight shape (K, C, R, S) and the options, images_per_gemm included.
// Fails (naming the sizes) if the output would be empty. Callers check ranks and channels first, as conv2d does.
Conv2dShape conv2d_shape(const Shape& x, const Shape& weight, const Conv2dOptions& options);

// Whether the CPU kernels run as implicit GEMM for `device`: on the CPU with the `strata` GEMM outside
// reproducible mode, unless turned off (set_conv2d_implicit_gemm(false): the im2col path, kept as the reference
// for tests and benchmarks). Process-wide.
bool conv2d_use_implicit_gemm(Device device);
void set_conv2d_implicit_gemm(bool on);

// Scratch buffers (allocated by the op; a kernel never allocates), with G = images_per_gemm:
//   col   (C*R*S, G*P*Q)  the im2col matrix of G images. Null when conv2d_scratch_col(shape) is 0: a 1x1 kernel
//                         with stride 1 and no padding, one image per GEMM, multiplies x itself and needs none.
//                         With implicit_gemm, only the input gradient uses col, for a chunk of channels at a time:
//                         (c*R*S, G*P*Q) with c = conv2d_dx_chunk_channels(s), and the forward passes null.
//                         With winograd, col is Winograd's scratch (conv2d_winograd_scratch) in both directions.
//   ycol  (K, G*P*Q)      y or dy of G images side by side, as the GEMM sees them. Null when G == 1.
int64_t conv2d_scratch_col(const Conv2dShape& s);   // element count of col (0: not needed)
int64_t conv2d_scratch_ycol(const Conv2dShape& s);  // element count of ycol (0: not needed)
int64_t conv2d_dx_chunk_channels(const Conv2dShape& s);  // channels per input-gradient chunk (C without implicit_gemm)

// forward:  y = conv(x, weight) + bias. bias may be null.
using conv2d_forward_fn = void (*)(float* y, const float* x, const float* weight, const float* bias, float* col,
                                   float* ycol, const Conv2dShape& s);
// backward: writes each non-null output: dx (N, C, H, W), dweight (K, C, R, S), dbias (K).
using conv2d_backward_fn = void (*)(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                    const float* weight, float* col, float* ycol, const Conv2dShape& s);
extern KernelTable<conv2d_forward_fn> conv2d_forward;
extern KernelTable<conv2d_backward_fn> conv2d_backward;

}  // namespace strata
