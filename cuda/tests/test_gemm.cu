// gemm_cuda (cuda/gemm.h), the row-major GEMM on cuBLAS, against gemm_cpu on the same data: every transpose
// combination, leading dimensions larger than the matrices, alpha and beta, K = 0, beta = 0 over a C full of NaN;
// the per-device handle and its stream; and a bad call reported as an Error naming the cuBLAS call. A .cu file
// because it calls the CUDA-side API directly; the device memory comes from Strata tensors on cuda:0.
//
// Tolerance. Both sides compute each C entry as alpha * (a dot product of K terms) + beta * C in float, in
// different orders (OpenBLAS's blocking vs cuBLAS's, with or without fused multiply-adds). Each is within
// gamma_K * (|alpha| sum_k |a_k b_k| + |beta c|) of the exact value, gamma_K = (K + 2) * 2^-24 (one rounding per
// addition and product, plus alpha and beta), so they differ by at most twice that: tol = (K + 2) * FLT_EPSILON *
// that sum, computed per entry. A transposed or misplaced operand is off by the size of the entries themselves.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "cuda/backend.h"
#include "cuda/gemm.h"
#include "cuda/tests/helpers.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"

using namespace strata;

namespace {

// A row-major rows x cols matrix stored with row stride ld >= cols (the padding holds random values that the
// GEMM must not read into the result), as a flat CPU tensor.
Tensor random_matrix(int64_t rows, int64_t ld, Generator& gen) { return randn({std::max<int64_t>(rows * ld, 1)}, gen); }

struct GemmCase {
    bool ta, tb;
    int64_t M, N, K;
    int64_t pad;  // added to every leading dimension
    float alpha, beta;
};

void check_gemm(const GemmCase& c, Generator& gen) {
    INFO("trans_a ", c.ta, " trans_b ", c.tb, ", M ", c.M, " N ", c.N, " K ", c.K, ", pad ", c.pad, ", alpha ",
         c.alpha, " beta ", c.beta);
    int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
    int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
    int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.N + c.pad;
    Tensor A = random_matrix(a_rows, lda, gen), B = random_matrix(b_rows, ldb, gen), C = random_matrix(c.M, ldc, gen);

    Tensor want = C.clone();
    gemm_cpu(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.f32(), lda, B.f32(), ldb, c.beta, want.f32(), ldc);
    Tensor Ad = A.to(kCuda0), Bd = B.to(kCuda0), Cd = C.to(kCuda0);
    gemm_cuda(c.ta, c.tb, c.M, c.N, c.K, c.alpha, Ad.f32(), lda, Bd.f32(), ldb, c.beta, Cd.f32(), ldc);
    std::vector<float> got = Cd.to_vector(), w = want.to_vector(), a = A.to_vector(), b = B.to_vector(),
                       c0 = C.to_vector();

    for (int64_t i = 0; i < c.M; ++i) {
        for (int64_t j = 0; j < c.N; ++j) {
            double bound = std::fabs(double(c.beta) * c0[i * ldc + j]);
            for (int64_t k = 0; k < c.K; ++k) {
                double aik = a[c.ta ? k * lda + i : i * lda + k], bkj = b[c.tb ? j * ldb + k : k * ldb + j];
                bound += std::fabs(double(c.alpha) * aik * bkj);
            }
            double tol = double(c.K + 2) * FLT_EPSILON * bound;
            INFO("C[", i, ", ", j, "]: got ", got[i * ldc + j], ", want ", w[i * ldc + j], ", tolerance ", tol);
            REQUIRE(std::fabs(double(got[i * ldc + j]) - double(w[i * ldc + j])) <= tol);
        }
        for (int64_t j = c.N; j < ldc; ++j) REQUIRE(got[i * ldc + j] == c0[i * ldc + j]);  // padding untouched
    }
}

}  // namespace

TEST_CASE("cuda gemm: row-major gemm_cuda matches gemm_cpu for every transpose, stride, alpha and beta") {
    if (skip_unless_cuda()) return;
    Generator gen(101);
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            check_gemm({ta, tb, 5, 7, 3, 0, 1.0f, 0.0f}, gen);
            check_gemm({ta, tb, 33, 65, 17, 3, 0.5f, -1.5f}, gen);  // padded leading dimensions, alpha and beta
            check_gemm({ta, tb, 1, 40, 70, 1, 1.0f, 1.0f}, gen);    // one row: a row vector times a matrix
            check_gemm({ta, tb, 40, 1, 9, 0, 2.0f, 0.0f}, gen);     // one column
        }
    check_gemm({false, false, 6, 4, 0, 2, 1.0f, 0.25f}, gen);  // K = 0: C = beta * C
}

TEST_CASE("cuda gemm: beta = 0 ignores what C held, NaN included") {
    if (skip_unless_cuda()) return;
    Generator gen(102);
    Tensor A = randn({4, 3}, gen), B = randn({3, 5}, gen);
    Tensor want = zeros({4, 5});
    gemm_cpu(false, false, 4, 5, 3, 1.0f, A.f32(), 3, B.f32(), 5, 0.0f, want.f32(), 5);
    Tensor C = full({4, 5}, std::numeric_limits<float>::quiet_NaN(), DType::F32, kCuda0);
    Tensor Ad = A.to(kCuda0), Bd = B.to(kCuda0);
    gemm_cuda(false, false, 4, 5, 3, 1.0f, Ad.f32(), 3, Bd.f32(), 5, 0.0f, C.f32(), 5);
    std::vector<float> got = C.to_vector(), w = want.to_vector();
    for (size_t i = 0; i < got.size(); ++i) CHECK(std::fabs(got[i] - w[i]) <= 5 * FLT_EPSILON * (1 + std::fabs(w[i])));
}

TEST_CASE("cuda gemm: one cuBLAS handle per device, on the device's stream") {
    if (skip_unless_cuda()) return;
    cublasHandle_t first = cublas_handle();
    CHECK(first != nullptr);
    CHECK(cublas_handle() == first);
    cudaStream_t stream = nullptr;
    CHECK(cublasGetStream(first, &stream) == CUBLAS_STATUS_SUCCESS);
    CHECK(stream == cuda_current_stream());
}

TEST_CASE("cuda gemm: a bad call is an Error naming cublasSgemm and the status") {
    if (skip_unless_cuda()) return;
    Tensor A = zeros({4, 4}, DType::F32, kCuda0);
#if defined(CUEMU)
    cuemu::CaptureReports reports;  // the stand-in also reports the bad leading dimension; keep it out of the log
#endif
    // lda = 2 is smaller than A's 4 columns: cuBLAS sees ldb = 2 < 4 rows of its (column-major) B.
    CHECK_THROWS_WITH_AS(gemm_cuda(false, false, 4, 4, 4, 1.0f, A.f32(), 2, A.f32(), 4, 0.0f, A.f32(), 4),
                         doctest::Contains("cuBLAS error: cublasSgemm"), Error);
    CHECK_THROWS_WITH_AS(gemm_cuda(false, false, 4, 4, 4, 1.0f, A.f32(), 2, A.f32(), 4, 0.0f, A.f32(), 4),
                         doctest::Contains("CUBLAS_STATUS_INVALID_VALUE"), Error);
    CHECK_THROWS_WITH_AS(gemm_cuda(false, false, int64_t(1) << 32, 4, 4, 1.0f, A.f32(), 4, A.f32(), 4, 0.0f, A.f32(),
                                   4),
                         doctest::Contains("exceed the 32-bit range"), Error);
}
