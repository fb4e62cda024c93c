// add's CUDA twin (cuda/add.cu): aliasing, a strided input, and the op's errors on device tensors. The forward and
// both gradients against the CPU (bitwise: one float add per element) are checked on tests/op_cases.h's entries.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/add.h"

using namespace strata;

TEST_CASE("cuda add: x + x gets twice the gradient, and a strided input is made contiguous on the device") {
    if (skip_unless_cuda()) return;
    Generator gen(22);
    Tensor x = randn({4, 6}, gen), dy = randn({4, 6}, gen);
    Tensor x_leaf = x.clone().requires_grad_();
    Tensor xc = x_leaf.to(kCuda0);
    Tensor y = xc + xc;
    y.backward(dy.to(kCuda0));
    std::vector<float> want = dy.to_vector();
    for (float& v : want) v *= 2.0f;
    CHECK(bitwise_difference(x_leaf.grad().to_vector(), want) == "");

    Tensor t = randn({6, 4}, gen);
    Tensor got = add(xc.detach(), t.to(kCuda0).transpose(0, 1));
    CHECK(bitwise_difference(got.to_vector(), add(x, t.transpose(0, 1)).to_vector()) == "");
}

TEST_CASE("cuda add: errors on device tensors") {
    if (skip_unless_cuda()) return;
    Tensor a = zeros({2, 3}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(add(a, zeros({3, 2}, DType::F32, kCuda0)), doctest::Contains("must have the same shape"),
                         Error);
    CHECK_THROWS_WITH_AS(add(a, zeros({2, 3})), doctest::Contains("add: tensors are on different devices"), Error);
}
