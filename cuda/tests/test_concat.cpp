// concat's CUDA twin (cuda/concat.cu) against the CPU kernel with inputs that need no gradient (a copy, so bitwise
// equal), and the op's errors with device tensors. Every other shape (every dimension, empty inputs, long rows,
// more rows than a grid has block rows) is an entry of tests/op_cases.h.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "layers/concat.h"

using namespace strata;

namespace {

// Concatenates copies of xs on `device` along dim and backpropagates dy; returns y and the gradient of each input
// that requires one (empty for the others).
std::vector<std::vector<float>> run_concat(const std::vector<Tensor>& xs, const std::vector<bool>& requires_grad,
                                           int64_t dim, const Tensor& dy, Device device) {
    std::vector<Tensor> leaves, on_device;
    for (size_t i = 0; i < xs.size(); ++i) {
        leaves.push_back(xs[i].clone().requires_grad_(requires_grad[i]));
        on_device.push_back(leaves.back().to(device));
    }
    Tensor y = concat(on_device, dim);
    CHECK(y.device() == device);
    y.backward(dy.to(device));
    std::vector<std::vector<float>> result{y.to_vector()};
    for (size_t i = 0; i < xs.size(); ++i) {
        CHECK(leaves[i].grad().defined() == requires_grad[i]);
        result.push_back(requires_grad[i] ? leaves[i].grad().to_vector() : std::vector<float>{});
    }
    return result;
}

}  // namespace

TEST_CASE("cuda concat: inputs that need no gradient get none, the others match the CPU bitwise") {
    if (skip_unless_cuda()) return;
    Generator gen(71);
    struct Case {
        std::vector<Shape> shapes;
        std::vector<bool> requires_grad;
        int64_t dim;
    };
    for (const Case& c : {
             Case{{{3, 2}, {1, 2}}, {true, false}, 0},                                   // outer = 1
             Case{{{2, 3, 5}, {2, 3, 1}, {2, 3, 2}}, {false, true, true}, -1},           // short rows
         }) {
        INFO("dim ", c.dim, ", first shape ", shape_str(c.shapes[0]));
        std::vector<Tensor> xs;
        for (const Shape& s : c.shapes) xs.push_back(randn(s, gen));
        Tensor dy = randn(concat(xs, c.dim).shape(), gen);
        std::vector<std::vector<float>> cpu = run_concat(xs, c.requires_grad, c.dim, dy, kCPU);
        std::vector<std::vector<float>> cuda = run_concat(xs, c.requires_grad, c.dim, dy, kCuda0);
        REQUIRE(cuda.size() == cpu.size());
        for (size_t i = 0; i < cpu.size(); ++i) {
            std::string what = i == 0 ? "y" : "the gradient of input " + std::to_string(i - 1);
            INFO(what);
            CHECK(bitwise_difference(cuda[i], cpu[i]) == "");
        }
    }
}

// More rows than a grid has block rows (65535). Slow on the emulator under the sanitizers, which leave it out.
TEST_CASE("cuda concat: errors with device tensors") {
    if (skip_unless_cuda()) return;
    Tensor a = zeros({2, 3}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(concat({a, zeros({2, 3})}, 0), doctest::Contains("tensor 1 is on cpu but tensor 0 is on cuda"),
                         Error);
    CHECK_THROWS_WITH_AS(concat({a, zeros({2, 4}, DType::F32, kCuda0)}, 0),
                         doctest::Contains("all sizes except dim 0 must match"), Error);
    CHECK_THROWS_WITH_AS(concat({a}, 2), doctest::Contains("dim 2 is out of range"), Error);
}
