// sum's CUDA twins (cuda/sum.cu), also mean's (mean calls sum's kernels with scale = 1/len): sums where a float
// accumulator would lose digits, empty reductions, and the errors on device tensors. Their parity with the CPU
// (forward within 1e-6 relative, backward bitwise: sum_bound) is checked on every entry of tests/op_cases.h, whose
// shapes cover the three forward kernels.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "cuda/tests/helpers.h"
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

}  // namespace

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
