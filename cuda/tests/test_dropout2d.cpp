// dropout2d's CUDA twin (cuda/dropout2d.cu) against the CPU kernel. The kernel re-implements framework/random.h's
// generator as __device__ functions, so the first test proves the masks are bit-identical: with x = 1 every output
// plane is exactly 1/(1-p) or 0, i.e. the mask itself, compared with keep = u >= p computed on the host from
// random_u64; p is set to the u of some planes so that the comparison's boundary (u == p is kept) is hit too.
// Forward and backward (the same kernel on dy with the same key) are then bitwise equal to the CPU's on every
// entry of tests/op_cases.h.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/dropout2d.h"

using namespace strata;

TEST_CASE("cuda dropout2d: the device's masks are the CPU's, bit for bit") {
    if (skip_unless_cuda()) return;
    const int64_t N = 64, C = 67;  // 4288 planes of one pixel
    Tensor ones_x = ones({N, C, 1, 1}, DType::F32, kCuda0);
    for (uint64_t seed : {0ull, 1ull, 0xDEADBEEFCAFEull}) {
        Generator gen(seed);
        // the key dropout2d will draw, and so each plane's u (framework/random.h)
        Generator peek = gen;
        const uint64_t key = peek.next_u64();
        std::vector<float> u(size_t(N * C));
        for (int64_t plane = 0; plane < N * C; ++plane)
            u[size_t(plane)] = u64_to_unit_float(random_u64(key, uint64_t(plane)));
        for (float p : {0.1f, 0.5f, 0.9f, u[17], u[4000]}) {
            INFO("seed ", seed, ", p ", p);
            Generator g = gen;
            std::vector<float> y = dropout2d(ones_x, p, true, g).to_vector();
            const float scale = 1.0f / (1.0f - p);
            int64_t mismatches = 0, kept = 0;
            for (int64_t plane = 0; plane < N * C; ++plane) {
                const bool keep = u[size_t(plane)] >= p;
                kept += keep;
                if (y[size_t(plane)] != (keep ? scale : 0.0f)) ++mismatches;
            }
            CHECK(mismatches == 0);
            CHECK(kept > 0);
            CHECK(kept < N * C);
        }
    }
}

TEST_CASE("cuda dropout2d: eval and p = 0 return the device input itself; bad p is an error") {
    if (skip_unless_cuda()) return;
    Tensor x = randn({2, 3, 4, 4}).to(kCuda0);
    Generator gen(52);
    CHECK(dropout2d(x, 0.5f, false, gen).is_same(x));
    CHECK(dropout2d(x, 0.0f, true, gen).is_same(x));
    CHECK(gen.counter() == 0);
    CHECK_THROWS_WITH_AS(dropout2d(x, 1.5f, true, gen), doctest::Contains("dropout2d: p must be in [0, 1]"), Error);
    CHECK_THROWS_WITH_AS(dropout2d(zeros({2, 3}, DType::F32, kCuda0), 0.5f, true, gen),
                         doctest::Contains("dropout2d: input must be 4-D"), Error);
}
