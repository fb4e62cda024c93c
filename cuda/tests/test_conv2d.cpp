// conv2d's CUDA twin (cuda/conv2d.cu: im2col/col2im kernels + cuBLAS): that the op-case table's conv2d entries
// (tests/op_cases.h, whose parity driver compares each with the CPU within conv2d_bound) reach every path of
// layers/conv2d.cpp: 1x1 stride 1 with and without the shortcut that skips im2col (col null: one image per GEMM),
// several images per GEMM (small maps) including a last group of one image, one image per GEMM with im2col (large
// maps); the Conv2d module on the device; and the op's errors with device tensors.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/gemm_parity.h"
#include "cuda/tests/helpers.h"
#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/conv2d.h"
#include "tests/op_cases.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("cuda conv2d: the op-case table's entries reach every path of the CPU op") {
    // checked here, so that a change of conv2d.cpp's images-per-GEMM heuristic that loses a path is noticed
    bool direct = false;             // pointwise, one image per GEMM: col is null
    bool pointwise_grouped = false;  // pointwise, several images per GEMM: im2col copies x
    bool one_image_im2col = false;   // images_per_gemm == 1 with im2col
    bool grouped = false;            // images_per_gemm > 1
    bool last_group_single = false;  // images_per_gemm > 1 and a last group of one image
    for (const ConvCase& c : conv2d_cases()) {
        Conv2dShape s = conv2d_shape(c.x, c.w, c.o);
        bool pointwise = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
        direct |= conv2d_scratch_col(s) == 0;
        pointwise_grouped |= pointwise && s.images_per_gemm > 1;
        one_image_im2col |= s.images_per_gemm == 1 && conv2d_scratch_col(s) > 0;
        grouped |= s.images_per_gemm > 1;
        last_group_single |= s.images_per_gemm > 1 && s.N % s.images_per_gemm == 1;
    }
    CHECK(direct);
    CHECK(pointwise_grouped);
    CHECK(one_image_im2col);
    CHECK(grouped);
    CHECK(last_group_single);
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
