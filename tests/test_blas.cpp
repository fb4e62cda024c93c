// gemm_cpu (framework/blas.h): both paths against a double-precision reference on every transpose case, BLAS's
// beta = 0 rule, and the fixed-order kernel's promise: each element computed in the documented order, bit for bit
// the same whatever the thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "framework/blas.h"
#include "framework/gemm.h"
#include "framework/random.h"
#include "tests/thread_scope.h"

using namespace strata;
using strata::testing::ThreadCountScope;

namespace {

struct Case {
    bool ta, tb;
    int64_t M, N, K;
};

// op(A) and op(B) as stored by a row-major caller: A is (M, K) or, transposed, (K, M); B is (K, N) or (N, K).
struct Operands {
    std::vector<float> A, B, C;
    int64_t lda, ldb, ldc;
};

Operands make_operands(const Case& c, uint64_t seed) {
    Generator g(seed);
    Operands o;
    o.lda = c.ta ? c.M + 3 : c.K + 1;  // padded rows: the strides must be honoured
    o.ldb = c.tb ? c.K + 2 : c.N + 5;
    o.ldc = c.N + 4;
    o.A.resize(size_t((c.ta ? c.K : c.M) * o.lda));
    o.B.resize(size_t((c.tb ? c.N : c.K) * o.ldb));
    o.C.resize(size_t(c.M * o.ldc));
    for (float& v : o.A) v = g.normal();
    for (float& v : o.B) v = g.normal();
    for (float& v : o.C) v = g.normal();
    return o;
}

float a_at(const Case& c, const Operands& o, int64_t i, int64_t k) { return c.ta ? o.A[k * o.lda + i] : o.A[i * o.lda + k]; }
float b_at(const Case& c, const Operands& o, int64_t k, int64_t j) { return c.tb ? o.B[j * o.ldb + k] : o.B[k * o.ldb + j]; }

// o.C (computed from C0) against alpha * op(A) op(B) + beta * C0 in double precision, and the padding of C untouched.
void check_against_reference(const Case& c, const Operands& o, const std::vector<float>& C0, float alpha, float beta) {
    for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.N; ++j) {
            double ref = 0, magnitude = 0;
            for (int64_t k = 0; k < c.K; ++k) {
                ref += double(a_at(c, o, i, k)) * b_at(c, o, k, j);
                magnitude += std::fabs(double(a_at(c, o, i, k)) * b_at(c, o, k, j));
            }
            ref = alpha * ref + beta * C0[size_t(i * o.ldc + j)];
            // float rounding of K products: a few ulps of the sum of their magnitudes
            REQUIRE(std::fabs(o.C[size_t(i * o.ldc + j)] - ref) <= 1e-6 * (magnitude + std::fabs(ref) + 1));
        }
    // the padding between rows of C is never written
    for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = c.N; j < o.ldc; ++j) REQUIRE(o.C[size_t(i * o.ldc + j)] == C0[size_t(i * o.ldc + j)]);
}

const Case kCases[] = {{false, false, 7, 70, 19}, {false, true, 5, 130, 33}, {true, false, 9, 17, 64},
                       {true, true, 3, 65, 8},    {false, false, 1, 1, 300}, {false, true, 66, 2, 1}};

}  // namespace

TEST_CASE("gemm: OpenBLAS and the fixed-order kernel against a double-precision reference") {
    for (bool reproducible : {false, true}) {
        ReproducibleGemmScope mode(reproducible);
        for (const Case& c : kCases) {
            CAPTURE(reproducible);
            INFO("ta ", c.ta, " tb ", c.tb, " M ", c.M, " N ", c.N, " K ", c.K);
            Operands o = make_operands(c, 7);
            std::vector<float> C0 = o.C;
            const float alpha = 0.75f, beta = -0.5f;
            gemm_cpu(c.ta, c.tb, c.M, c.N, c.K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta, o.C.data(), o.ldc);
            check_against_reference(c, o, C0, alpha, beta);
        }
    }
}

TEST_CASE("gemm: beta = 0 never reads C (NaN there does not leak), on both paths") {
    for (bool reproducible : {false, true}) {
        ReproducibleGemmScope mode(reproducible);
        Case c{false, false, 4, 9, 5};
        Operands o = make_operands(c, 3);
        for (float& v : o.C) v = std::numeric_limits<float>::quiet_NaN();
        gemm_cpu(false, false, c.M, c.N, c.K, 1.0f, o.A.data(), o.lda, o.B.data(), o.ldb, 0.0f, o.C.data(), o.ldc);
        for (int64_t i = 0; i < c.M; ++i)
            for (int64_t j = 0; j < c.N; ++j) CHECK(std::isfinite(o.C[size_t(i * o.ldc + j)]));
    }
}

TEST_CASE("gemm: the fixed-order kernel computes each element in the documented order, whatever the threads") {
    for (const Case& c : kCases) {
        INFO("ta ", c.ta, " tb ", c.tb, " M ", c.M, " N ", c.N, " K ", c.K);
        Operands o = make_operands(c, 11);
        const float alpha = 1.25f, beta = 0.5f;
        // blas.h's order: c = beta * c, then c = fma(alpha * a[i,k], b[k,j], c) for k = 0, 1, ..., K-1
        std::vector<float> expected = o.C;
        for (int64_t i = 0; i < c.M; ++i)
            for (int64_t j = 0; j < c.N; ++j) {
                float v = beta * expected[size_t(i * o.ldc + j)];
                for (int64_t k = 0; k < c.K; ++k) v = std::fma(alpha * a_at(c, o, i, k), b_at(c, o, k, j), v);
                expected[size_t(i * o.ldc + j)] = v;
            }
        for (int threads : {1, 2, 3, 4}) {
            CAPTURE(threads);
            ThreadCountScope scope(threads);
            std::vector<float> C = o.C;
            gemm_fixed_order(c.ta, c.tb, c.M, c.N, c.K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta, C.data(),
                             o.ldc);
            CHECK(C == expected);  // bit for bit
            ReproducibleGemmScope mode(true);
            std::vector<float> via_door = o.C;
            gemm_cpu(c.ta, c.tb, c.M, c.N, c.K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta, via_door.data(),
                     o.ldc);
            CHECK(via_door == expected);
        }
    }
}

TEST_CASE("gemm: the reproducible mode is scoped") {
    CHECK_FALSE(reproducible_gemm());
    {
        ReproducibleGemmScope on(true);
        CHECK(reproducible_gemm());
        {
            ReproducibleGemmScope off(false);
            CHECK_FALSE(reproducible_gemm());
        }
        CHECK(reproducible_gemm());
    }
    CHECK_FALSE(reproducible_gemm());
}

// Strata's packed GEMM (framework/gemm.h), every micro-kernel this CPU runs: sizes that are not multiples of the
// register tile (12x32, 6x16, 4x16) nor of the cache blocks (MC 144, KC 256, NC 3072), all transposes, padded
// leading dimensions, alpha and beta, K = 0.
const Case kPackedCases[] = {{false, false, 13, 33, 7},    {false, true, 25, 17, 31},  {true, false, 7, 65, 300},
                             {true, true, 1, 1, 1},        {false, false, 150, 70, 260}, {true, true, 145, 97, 258},
                             {false, false, 12, 3100, 5},  {false, true, 40, 3073, 3},  {false, false, 5, 9, 0}};

TEST_CASE("gemm: the packed kernels against a double-precision reference at odd shapes") {
    for (GemmIsa isa : {GemmIsa::kPortable, GemmIsa::kAvx2, GemmIsa::kAvx512}) {
        if (!gemm_isa_supported(isa)) continue;
        for (const Case& c : kPackedCases) {
            INFO(gemm_isa_name(isa), " ta ", c.ta, " tb ", c.tb, " M ", c.M, " N ", c.N, " K ", c.K);
            for (float beta : {0.0f, -0.5f}) {
                Operands o = make_operands(c, 5);
                std::vector<float> C0 = o.C;
                gemm_packed(isa, c.ta, c.tb, c.M, c.N, c.K, 0.75f, o.A.data(), o.lda, o.B.data(), o.ldb, beta,
                            o.C.data(), o.ldc);
                check_against_reference(c, o, C0, 0.75f, beta);
            }
        }
    }
}

TEST_CASE("gemm: the packed kernels never read C when beta = 0 and give the same bits for 1, 2 and 3 threads") {
    for (GemmIsa isa : {GemmIsa::kPortable, GemmIsa::kAvx2, GemmIsa::kAvx512}) {
        if (!gemm_isa_supported(isa)) continue;
        Case c{false, true, 150, 200, 300};
        Operands o = make_operands(c, 9);
        std::vector<float> first;
        for (int threads : {1, 2, 3}) {
            INFO(gemm_isa_name(isa), " threads ", threads);
            ThreadCountScope scope(threads);
            std::vector<float> C(o.C.size(), std::numeric_limits<float>::quiet_NaN());
            gemm_packed(isa, c.ta, c.tb, c.M, c.N, c.K, 1.0f, o.A.data(), o.lda, o.B.data(), o.ldb, 0.0f, C.data(),
                        o.ldc);
            for (int64_t i = 0; i < c.M; ++i)
                for (int64_t j = 0; j < c.N; ++j) REQUIRE(std::isfinite(C[size_t(i * o.ldc + j)]));
            if (first.empty()) first = C;
            for (int64_t i = 0; i < c.M; ++i)
                for (int64_t j = 0; j < c.N; ++j) REQUIRE(C[size_t(i * o.ldc + j)] == first[size_t(i * o.ldc + j)]);
        }
    }
}

TEST_CASE("gemm: gemm_pack_transposed writes src's rows as dst's columns, zero up to the width, at odd sizes") {
    Generator g(11);
    // widths of the register tiles (12, 6, 32) and below 8; rows short of the width; cols not multiples of 8
    for (int64_t width : {1, 4, 6, 8, 12, 32})
        for (int64_t rows : {int64_t(0), int64_t(1), width / 2, width})
            for (int64_t cols : {1, 7, 8, 13, 64, 259}) {
                CAPTURE(width);
                CAPTURE(rows);
                CAPTURE(cols);
                const int64_t ld_src = cols + 3, ld_dst = width + 5;
                std::vector<float> src(size_t(std::max<int64_t>(rows, 1) * ld_src));
                for (float& v : src) v = g.normal();
                std::vector<float> dst(size_t(cols * ld_dst), 7.0f);
                gemm_pack_transposed(dst.data(), ld_dst, width, src.data(), ld_src, rows, cols, -0.5f);
                for (int64_t k = 0; k < cols; ++k)
                    for (int64_t j = 0; j < ld_dst; ++j) {
                        const float want = j >= width ? 7.0f : j < rows ? -0.5f * src[size_t(j * ld_src + k)] : 0.0f;
                        REQUIRE(dst[size_t(k * ld_dst + j)] == want);  // and the padding of dst is left alone
                    }
            }
}
