// count_nonfinite on the device against the CPU kernel (framework/finite.h): the counts and the first index of NaN
// and Inf values, in tensors small and larger than one grid pass, several tensors per call.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "cuda/tests/helpers.h"
#include "framework/finite.h"
#include "framework/random.h"
#include "framework/tensor.h"

using namespace strata;

TEST_CASE("cuda backend: count_nonfinite matches the CPU") {
    if (skip_unless_cuda()) return;
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    Generator gen(11);
    std::vector<Tensor> cpu;
    for (int64_t n : {1, 7, 1000, 70001, 300007}) {
        Tensor clean = randn({n}, gen);
        cpu.push_back(clean);
        std::vector<float> v = clean.to_vector();
        // poison a few positions, the last one first so that the first index is not simply the first write
        for (int64_t i : {n - 1, n / 2, n / 3, n / 3 + 1})
            v[size_t(i)] = (i % 3 == 0) ? nan : (i % 3 == 1 ? inf : -inf);
        cpu.push_back(from_vector(v, {n}));
    }
    cpu.push_back(Tensor());  // undefined: counts as finite
    std::vector<Tensor> device;
    for (const Tensor& t : cpu) device.push_back(t.defined() ? t.to(kCuda0) : t);
    std::vector<NonFinite> want = count_nonfinite(cpu), got = count_nonfinite(device);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i].count == want[i].count);
        CHECK(got[i].first == want[i].first);
    }
    // the CPU reference itself: clean tensors have none, the poisoned ones the distinct positions written above
    CHECK(want[0].count == 0);
    CHECK(want[0].first == -1);
    CHECK(want[1].count == 1);  // n = 1: all four writes hit index 0
    CHECK(want[9].count == 4);
    CHECK(want[9].first == 300007 / 3);
}
