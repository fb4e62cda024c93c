// cross_entropy's CUDA twin (cuda/cross_entropy.cu) against the CPU kernels where the op-case table
// (tests/op_cases.h, which covers 4-D and 2-D inputs, ignored pixels, a custom ignore label, one class and more
// pixels than the reduction block within cross_entropy_bound) cannot go: huge logits, an all-ignored target, and the
// bad-label report written by the kernel (the FIRST bad pixel, wherever the threads find them), turned into the
// op's Error.
//
// Tolerance: as cross_entropy_bound, 1e-5 relative on the loss and 1e-5 of the largest gradient on dlogits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/cross_entropy.h"

using namespace strata;

namespace {

// Labels in [0, C), about a fifth of them set to ignore_index.
Tensor random_target(const Shape& shape, int64_t C, int64_t ignore_index, Generator& gen) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int32_t& v : t) v = gen.uniform() < 0.2f ? int32_t(ignore_index) : int32_t(gen.randint(C));
    return from_vector_i32(t, shape);
}

struct CeResult {
    float loss;
    std::vector<float> dlogits;
};

// loss = cross_entropy(logits, target) on `device`, then loss.backward(dloss).
CeResult run_ce(const Tensor& logits, const Tensor& target, int64_t ignore_index, float dloss, Device device) {
    Tensor leaf = logits.clone().requires_grad_();
    Tensor loss = cross_entropy(leaf.to(device), target.to(device), ignore_index);
    STRATA_CHECK(loss.device() == device, "run_ce: the loss is on ", device_name(loss.device()));
    loss.backward(full({}, dloss, DType::F32, device));
    return {loss.item(), leaf.grad().to_vector()};
}

void check_same(const CeResult& got, const CeResult& want) {
    CHECK(got.loss == doctest::Approx(want.loss).epsilon(1e-5));
    double largest = 1e-30;
    for (float w : want.dlogits) largest = std::max(largest, double(std::fabs(w)));
    CHECK(difference_above(got.dlogits, want.dlogits, 1e-5 * largest) == "");
}

Tensor scaled(const Tensor& x, float scale, float offset) {
    std::vector<float> v = x.to_vector();
    for (float& e : v) e = e * scale + offset;
    return from_vector(v, x.shape());
}

}  // namespace

TEST_CASE("cuda cross_entropy: huge logits stay finite, as on the CPU") {
    if (skip_unless_cuda()) return;
    Generator gen(62);
    Tensor logits = scaled(randn({2, 4, 3, 5}, gen), 100.0f, 1e4f);
    Tensor target = random_target({2, 3, 5}, 4, 255, gen);
    CeResult got = run_ce(logits, target, 255, 1.0f, kCuda0), want = run_ce(logits, target, 255, 1.0f, kCPU);
    CHECK(std::isfinite(got.loss));
    check_same(got, want);
}

TEST_CASE("cuda cross_entropy: an all-ignored target gives loss 0 and gradient 0") {
    if (skip_unless_cuda()) return;
    Generator gen(63);
    Tensor logits = randn({2, 3, 4, 4}, gen);
    Tensor target = from_vector_i32(std::vector<int32_t>(32, 255), {2, 4, 4});
    CeResult got = run_ce(logits, target, 255, 1.0f, kCuda0);
    CHECK(got.loss == 0.0f);
    CHECK(got.dlogits == std::vector<float>(96, 0.0f));
}

TEST_CASE("cuda cross_entropy: the kernel reports the first bad label, and the op throws") {
    if (skip_unless_cuda()) return;
    Generator gen(64);
    // 2 x 30 x 40 = 2400 pixels: the reduction's 1024 threads each take 2 or 3 of them. Bad labels at pixels 1500,
    // 1501 and 2000 (the second pixels of threads 476, 477 and 976): the report must name pixel 1500.
    Tensor logits = randn({2, 5, 30, 40}, gen).to(kCuda0);
    std::vector<int32_t> t(2400, 1);
    t[2000] = 7;
    t[1500] = 9;
    t[1501] = -3;
    Tensor target = from_vector_i32(t, {2, 30, 40}).to(kCuda0);
    // pixel 1500 = n 1, h 7, w 20 (1500 - 1200 = 300 = 7 * 40 + 20)
    CHECK_THROWS_WITH_AS(cross_entropy(logits, target),
                         doctest::Contains("cross_entropy: target has label 9 at (n=1, h=7, w=20)"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(randn({3, 4}).to(kCuda0), from_vector_i32({0, 4, 1}, {3}).to(kCuda0)),
                         doctest::Contains("target has label 4 at (n=1)"), Error);
    // the ignore label itself is never bad, whatever its value
    CHECK(std::isfinite(cross_entropy(randn({3, 4}).to(kCuda0), from_vector_i32({0, 99, 1}, {3}).to(kCuda0), 99)
                            .item()));
}

TEST_CASE("cuda cross_entropy: argument errors on device tensors") {
    if (skip_unless_cuda()) return;
    Tensor logits = zeros({2, 3, 4, 4}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2, 4, 4}, DType::I32)),
                         doctest::Contains("cross_entropy: tensors are on different devices"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2, 4, 5}, DType::I32, kCuda0)),
                         doctest::Contains("cross_entropy: target must have shape [2, 4, 4]"), Error);
}
