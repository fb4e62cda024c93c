// add's CUDA twin (cuda/add.cu) against the CPU kernel: the forward and both inputs' gradients must be bitwise equal
// (one float add per element, rounded the same way), at several sizes; and the op's errors on device tensors.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/add.h"

using namespace strata;

namespace {

const std::vector<Shape>& elementwise_shapes() {
    // one element; odd sizes; 70001 elements = 274 blocks of 256 threads, the last one mostly empty
    static const std::vector<Shape> shapes = {{1}, {3, 7}, {2, 3, 33, 17}, {70001}};
    return shapes;
}

}  // namespace

TEST_CASE("cuda add: forward and both gradients match the CPU bitwise") {
    if (skip_unless_cuda()) return;
    Generator gen(21);
    for (const Shape& shape : elementwise_shapes()) {
        INFO("shape ", shape_str(shape));
        Tensor a = randn(shape, gen), b = randn(shape, gen), dy = randn(shape, gen);
        std::vector<float> want_y, want_da, want_db;
        {
            Tensor a_leaf = a.clone().requires_grad_(), b_leaf = b.clone().requires_grad_();
            Tensor y = add(a_leaf, b_leaf);
            y.backward(dy);
            want_y = y.to_vector();
            want_da = a_leaf.grad().to_vector();
            want_db = b_leaf.grad().to_vector();
        }
        Tensor a_leaf = a.clone().requires_grad_(), b_leaf = b.clone().requires_grad_();
        Tensor y = add(a_leaf.to(kCuda0), b_leaf.to(kCuda0));
        CHECK(y.device() == kCuda0);
        y.backward(dy.to(kCuda0));
        CHECK(bitwise_difference(y.to_vector(), want_y) == "");
        REQUIRE(a_leaf.grad().defined());
        REQUIRE(b_leaf.grad().defined());
        CHECK(bitwise_difference(a_leaf.grad().to_vector(), want_da) == "");
        CHECK(bitwise_difference(b_leaf.grad().to_vector(), want_db) == "");
    }
}

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
