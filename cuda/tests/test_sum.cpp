// sum's CUDA twins (cuda/sum.cu) against the CPU kernels, through sum() and mean() (mean has no kernels of its own:
// it calls sum's with scale = 1/len). Both sum in double and round once, in different orders, so the forward may
// differ in the last bit of the float: 1e-6 relative per element (a float ulp is 1.2e-7 relative). The backward
// (scale * dy, one float multiply) must be bitwise equal. Shapes cover the three forward kernels: the full sum
// (one block), inner >= 32 (the 32 x 8 column tiles, with a partly filled last tile) and inner < 32 (a warp per
// output), with keepdim both ways, empty reductions, and sums where a float accumulator would lose digits.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/mean.h"
#include "layers/sum.h"

using namespace strata;

namespace {

// "" when |got - want| <= rtol * |want| everywhere (no NaNs), else the worst element.
std::string relative_difference_above(const std::vector<float>& got, const std::vector<float>& want, double rtol) {
    if (got.size() != want.size()) return str("sizes differ: ", got.size(), " vs ", want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        double error = std::fabs(double(got[i]) - double(want[i]));
        if (!(error <= rtol * std::fabs(double(want[i]))))
            return str("element ", i, " of ", got.size(), ": got ", got[i], ", want ", want[i]);
    }
    return "";
}

// Runs op on the CPU and on the device from the same x and dy; checks y (relative 1e-6) and dx (bitwise).
void check_reduction(const std::function<Tensor(const Tensor&)>& op, const Tensor& x, Generator& gen) {
    Tensor y_shape_probe = op(x);
    Tensor dy = randn(y_shape_probe.shape(), gen);
    ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
    ForwardBackward cuda = run_forward_backward(op, x, dy, kCuda0);
    CHECK(relative_difference_above(cuda.y, cpu.y, 1e-6) == "");
    CHECK(bitwise_difference(cuda.dx, cpu.dx) == "");
}

}  // namespace

TEST_CASE("cuda sum: the sum of all elements matches the CPU") {
    if (skip_unless_cuda()) return;
    Generator gen(31);
    for (Shape shape : {Shape{1}, Shape{5}, Shape{3, 7}, Shape{2, 3, 33, 17}, Shape{70001}}) {
        INFO("shape ", shape_str(shape));
        Tensor x = randn(shape, gen);
        check_reduction([](const Tensor& t) { return sum(t); }, x, gen);
        check_reduction([](const Tensor& t) { return mean(t); }, x, gen);
    }
}

TEST_CASE("cuda sum: sums along one dimension match the CPU, for every kernel shape") {
    if (skip_unless_cuda()) return;
    Generator gen(32);
    struct Case {
        Shape shape;
        int64_t dim;
    };
    const std::vector<Case> cases = {
        {{2, 3, 33, 17}, 0}, {{2, 3, 33, 17}, 1}, {{2, 3, 33, 17}, 2}, {{2, 3, 33, 17}, 3}, {{2, 3, 33, 17}, -1},
        {{70, 40}, 0},       // inner 40: two column tiles, the second 8/32 full
        {{70, 40}, 1},       // inner 1: a warp per row
        {{3, 300, 5}, 1},    // inner 5: a warp per output, strided reads
        {{2, 500, 64}, 1},   // inner 64: column tiles over a long len
        {{1, 1, 1}, 1},      // len 1
        {{257, 3}, 1},       // more outputs than one block's warps
    };
    for (const Case& c : cases) {
        for (bool keepdim : {false, true}) {
            INFO("shape ", shape_str(c.shape), ", dim ", c.dim, ", keepdim ", keepdim);
            Tensor x = randn(c.shape, gen);
            int64_t dim = c.dim;
            check_reduction([dim, keepdim](const Tensor& t) { return sum(t, dim, keepdim); }, x, gen);
            check_reduction([dim, keepdim](const Tensor& t) { return mean(t, dim, keepdim); }, x, gen);
        }
    }
}

TEST_CASE("cuda sum: sums of many terms keep the CPU's double accuracy") {
    if (skip_unless_cuda()) return;
    // 0.1f added 100000 times: a float accumulator drifts away from 10000 (see layers/sum.cpp); a double one does not.
    Tensor x = full({100000}, 0.1f);
    float want = sum(x).item();
    CHECK(sum(x.to(kCuda0)).item() == doctest::Approx(want).epsilon(1e-7));
    CHECK(std::fabs(want - 10000.0f) < 1e-2f);
    // a large common offset: per-column sums over len = 4000 of 1000 + small noise
    Generator gen(33);
    std::vector<float> v = randn({4000, 33}, gen).to_vector();
    for (float& e : v) e = 1000.0f + 1e-3f * e;
    Tensor big = from_vector(v, {4000, 33});
    CHECK(relative_difference_above(sum(big.to(kCuda0), 0).to_vector(), sum(big, 0).to_vector(), 1e-6) == "");
    CHECK(relative_difference_above(mean(big.to(kCuda0), 0).to_vector(), mean(big, 0).to_vector(), 1e-6) == "");
}

TEST_CASE("cuda sum: empty reductions give zeros, empty outputs give nothing") {
    if (skip_unless_cuda()) return;
    CHECK(sum(zeros({0}, DType::F32, kCuda0)).to_vector() == std::vector<float>{0.0f});
    CHECK(sum(zeros({4, 0, 3}, DType::F32, kCuda0), 1).to_vector() == std::vector<float>(12, 0.0f));
    CHECK(sum(zeros({4, 0, 3}, DType::F32, kCuda0), 0).numel() == 0);
}

TEST_CASE("cuda sum: mean's errors on device tensors") {
    if (skip_unless_cuda()) return;
    CHECK_THROWS_WITH_AS(mean(zeros({0}, DType::F32, kCuda0)), doctest::Contains("mean: input is empty"), Error);
    CHECK_THROWS_WITH_AS(mean(zeros({2, 0}, DType::F32, kCuda0), 1), doctest::Contains("has size 0"), Error);
    CHECK_THROWS_WITH_AS(sum(zeros({2, 3}, DType::F32, kCuda0), 2), doctest::Contains("sum: dim 2 is out of range"),
                         Error);
}
