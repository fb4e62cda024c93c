// conv2d's CUDA twin (cuda/conv2d.cu: im2col/col2im kernels + cuBLAS) against the CPU kernels, forward and
// backward (dx, dweight, dbias), over the options and the paths of layers/conv2d.cpp: stride 2 and 3, dilation 2
// and 4, symmetric and asymmetric padding, non-square kernels, 1x1 stride 1 with and without the shortcut that
// skips im2col (col null: one image per GEMM), several images per GEMM (small maps) including a last group of one
// image, one image per GEMM with im2col (large maps), bias and no bias, batch > 1; the Conv2d module on the
// device; and the op's errors with device tensors.
//
// Tolerance (cuda/tests/gemm_parity.h): y sums C*R*S products plus the bias, dx[n,c,h,w] sums at most K*R*S
// products (the taps that read it), dweight[k,c,r,s] sums N*P*Q products and dbias N*P*Q values; each element may
// differ by (terms + 2) * FLT_EPSILON * (the same sum over absolute values), computed with the CPU op on |x|, |w|,
// |dy|. The permutations (im2col, ycol) are exact, and col2im adds in the CPU's order.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/gemm_parity.h"
#include "cuda/tests/helpers.h"
#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/conv2d.h"

using namespace strata;

namespace {

struct ConvRun {
    std::vector<float> y, dx, dweight, dbias;
};

// conv2d on `device` from CPU leaves, then backward with dy; the gradients come back to the CPU leaves.
ConvRun run_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy, const Conv2dOptions& o,
                 Device device) {
    Tensor xl = x.clone().requires_grad_(), wl = w.clone().requires_grad_();
    Tensor bl = b.defined() ? b.clone().requires_grad_() : Tensor();
    Tensor y = conv2d(xl.to(device), wl.to(device), bl.defined() ? bl.to(device) : Tensor(), o);
    STRATA_CHECK(y.device() == device, "conv2d ran on ", device_name(y.device()));
    y.backward(dy.to(device));
    ConvRun run{y.to_vector(), xl.grad().to_vector(), wl.grad().to_vector(), {}};
    if (bl.defined()) run.dbias = bl.grad().to_vector();
    return run;
}

// Which of the CPU op's paths the cases reached (checked at the end, so that a change of conv2d.cpp's
// images-per-GEMM heuristic that loses one is noticed).
struct Coverage {
    bool direct = false;            // pointwise, one image per GEMM: col is null
    bool pointwise_grouped = false; // pointwise, several images per GEMM: im2col copies x
    bool one_image_im2col = false;  // images_per_gemm == 1 with im2col
    bool grouped = false;           // images_per_gemm > 1
    bool last_group_single = false; // images_per_gemm > 1 and a last group of one image
};

struct ConvCase {
    Shape x, w;
    Conv2dOptions options;
    bool bias;
};

void check_conv(const ConvCase& c, Generator& gen, Coverage& cov) {
    const Conv2dOptions& o = c.options;
    INFO("x ", shape_str(c.x), ", weight ", shape_str(c.w), ", stride (", o.stride.h, ", ", o.stride.w, "), padding (",
         o.padding.h, ", ", o.padding.w, "), dilation (", o.dilation.h, ", ", o.dilation.w, "), bias ", c.bias);
    Conv2dShape s = conv2d_shape(c.x, c.w, o);
    INFO("images_per_gemm ", s.images_per_gemm, ", col ", conv2d_scratch_col(s), " floats");
    bool pointwise = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
    cov.direct |= conv2d_scratch_col(s) == 0;
    cov.pointwise_grouped |= pointwise && s.images_per_gemm > 1;
    cov.one_image_im2col |= s.images_per_gemm == 1 && conv2d_scratch_col(s) > 0;
    cov.grouped |= s.images_per_gemm > 1;
    cov.last_group_single |= s.images_per_gemm > 1 && s.N % s.images_per_gemm == 1;

    Tensor x = randn(c.x, gen), w = randn(c.w, gen);
    Tensor b = c.bias ? randn({s.K}, gen) : Tensor();
    Tensor dy = randn({s.N, s.K, s.P, s.Q}, gen);
    ConvRun cpu = run_conv(x, w, b, dy, o, kCPU);
    ConvRun cuda = run_conv(x, w, b, dy, o, kCuda0);

    NoGradGuard no_grad;
    Tensor ax = abs_of(x), aw = abs_of(w), ady = abs_of(dy);
    Tensor y_bound = conv2d(ax, aw, c.bias ? abs_of(b) : Tensor(), o);
    Conv2dGrads dx_bound = conv2d_grads(ady, x, aw, o, true, false, true);  // sum |w| |dy|, and sum |dy|
    Conv2dGrads dw_bound = conv2d_grads(ady, ax, w, o, false, true, false);  // sum |dy| |x|
    const int64_t crs = s.C * s.R * s.S, krs = s.K * s.R * s.S, npq = s.N * s.P * s.Q;
    CHECK(difference_beyond(cuda.y, cpu.y, sum_tolerance(y_bound, crs + 2)) == "");
    CHECK(difference_beyond(cuda.dx, cpu.dx, sum_tolerance(dx_bound.dx, krs + 2)) == "");
    CHECK(difference_beyond(cuda.dweight, cpu.dweight, sum_tolerance(dw_bound.dweight, npq + 2)) == "");
    if (c.bias) CHECK(difference_beyond(cuda.dbias, cpu.dbias, sum_tolerance(dx_bound.dbias, npq + 2)) == "");
}

Conv2dOptions opts(Size2 stride, Size2 padding, Size2 dilation) { return {stride, padding, dilation}; }

}  // namespace

TEST_CASE("cuda conv2d: forward and backward match the CPU's over strides, dilations, padding and GEMM grouping") {
    if (skip_unless_cuda()) return;
    Generator gen(301);
    Coverage cov;
    const std::vector<ConvCase> cases = {
        {{2, 3, 9, 8}, {4, 3, 3, 3}, opts(1, 1, 1), true},                        // 3x3 same, small maps: grouped
        {{2, 3, 11, 10}, {5, 3, 3, 3}, opts(2, 1, 1), true},                      // stride 2
        {{1, 2, 13, 12}, {3, 2, 3, 3}, opts(1, 2, 2), false},                     // dilation 2 (layer3)
        {{2, 2, 17, 15}, {3, 2, 3, 3}, opts(1, 4, 4), true},                      // dilation 4 (layer4)
        {{1, 3, 10, 9}, {2, 3, 2, 3}, opts({3, 2}, {0, 1}, {1, 2}), true},        // asymmetric; stride 3 > kernel 2
        {{2, 2, 7, 7}, {3, 2, 5, 1}, opts({1, 2}, {2, 0}, 1), false},             // 5x1 kernel
        {{2, 2, 5, 5}, {3, 2, 5, 5}, opts(1, 0, 1), true},                        // the kernel covers the map: 1x1
        {{2, 4, 7, 6}, {5, 4, 1, 1}, opts(1, 0, 1), true},                        // pointwise, grouped (copies x)
        {{4, 6, 1, 1}, {3, 6, 1, 1}, opts(1, 0, 1), false},                       // PSPNet's 1x1 pooled map
        {{2, 2, 32, 33}, {3, 2, 1, 1}, opts(1, 0, 1), true},                      // pointwise, one image: no col
        {{2, 3, 8, 9}, {4, 3, 1, 1}, opts(2, 0, 1), false},                       // 1x1 stride 2: needs col
        {{3, 2, 24, 25}, {3, 2, 3, 3}, opts(1, 1, 1), true},                      // groups of 2, last group 1
        {{2, 1, 34, 33}, {2, 1, 3, 3}, opts(1, 1, 1), true},                      // one image per GEMM, im2col
        {{2, 1, 33, 34}, {2, 1, 3, 3}, opts(1, 2, 2), false},                     // the same, dilated
    };
    for (const ConvCase& c : cases) check_conv(c, gen, cov);
    CHECK(cov.direct);
    CHECK(cov.pointwise_grouped);
    CHECK(cov.one_image_im2col);
    CHECK(cov.grouped);
    CHECK(cov.last_group_single);
}

TEST_CASE("cuda conv2d: the Conv2d module runs on the device") {
    if (skip_unless_cuda()) return;
    Generator gen(302);
    manual_seed(11);
    Conv2d cpu_layer(3, 4, 3, 2, 1);
    manual_seed(11);  // the same initial weights
    Conv2d cuda_layer(3, 4, 3, 2, 1);
    cuda_layer.to(kCuda0);
    CHECK(cuda_layer.weight.device() == kCuda0);
    CHECK(cuda_layer.bias.device() == kCuda0);
    Tensor x = randn({2, 3, 9, 9}, gen);
    Tensor want = cpu_layer.forward(x);
    Tensor got = cuda_layer.forward(x.to(kCuda0));
    CHECK(got.device() == kCuda0);
    NoGradGuard no_grad;
    Tensor bound = conv2d(abs_of(x), abs_of(cpu_layer.weight), abs_of(cpu_layer.bias), cpu_layer.options);
    CHECK(difference_beyond(got.to_vector(), want.to_vector(), sum_tolerance(bound, 3 * 9 + 2)) == "");
}

TEST_CASE("cuda conv2d: device tensors give the op's errors") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 2, 5, 5}, DType::F32, kCuda0);
    Tensor w = zeros({3, 2, 3, 3}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(conv2d(x, zeros({3, 2, 3, 3})), doctest::Contains("conv2d: tensors are on different devices"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(x, w, zeros({3})), doctest::Contains("conv2d: tensors are on different devices"),
                         Error);
    CHECK_THROWS_WITH_AS(conv2d(x, zeros({3, 4, 3, 3}, DType::F32, kCuda0)), doctest::Contains("channels"), Error);
    CHECK_THROWS_WITH_AS(conv2d(x, zeros({3, 2, 7, 7}, DType::F32, kCuda0)),
                         doctest::Contains("would be <= 0"), Error);
}
