// The emulator on textbook kernels: results against CPU loops (and the cuBLAS stand-in), in every thread order.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/blas_shim.h"
#include "cuda/emu/tests/helpers.h"
#include "cuda/emu/tests/kernels.h"

namespace {

std::vector<float> random_floats(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// C = A * B, row-major, with a double accumulator (the reference).
std::vector<float> cpu_gemm(const std::vector<float>& A, const std::vector<float>& B, int M, int N, int K) {
    std::vector<float> C(size_t(M) * N);
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double acc = 0;
            for (int k = 0; k < K; ++k) acc += double(A[size_t(i) * K + k]) * B[size_t(k) * N + j];
            C[size_t(i) * N + j] = float(acc);
        }
    return C;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, float tol) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::fabs(got[i] - want[i]) > tol * (1.0f + std::fabs(want[i]))) {
            FAIL_CHECK("element " << i << ": got " << got[i] << ", want " << want[i]);
            return;
        }
    }
}

double sum_of(const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += x;
    return s;
}

}  // namespace

TEST_CASE("cuemu: tiled SGEMM matches a CPU loop and the cuBLAS stand-in") {
    struct Shape {
        int M, N, K;
    };
    // multiples of the tile, and odd sizes that leave partial tiles on every edge
    for (Shape s : {Shape{32, 48, 64}, Shape{37, 21, 45}}) {
        INFO("M ", s.M, " N ", s.N, " K ", s.K);
        std::vector<float> A = random_floats(size_t(s.M) * s.K, 1), B = random_floats(size_t(s.K) * s.N, 2);
        std::vector<float> want = cpu_gemm(A, B, s.M, s.N, s.K);
        DeviceArray<float> dA(A), dB(B), dC(size_t(s.M) * s.N), dC_blas(size_t(s.M) * s.N);
        for_each_order([&] {
            dim3 grid((s.N + kTile - 1) / kTile, (s.M + kTile - 1) / kTile), block(kTile, kTile);
            CUEMU_LAUNCH(tiled_sgemm, grid, block, 0, 0, dC.ptr, dA.ptr, dB.ptr, s.M, s.N, s.K);
            check_close(dC.download(), want, 1e-5f);
        });
        // Row-major C = A B is column-major C^T = B^T A^T: cuBLAS gets B first, with the sizes swapped.
        cublasHandle_t handle;
        REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
        float one = 1.0f, zero = 0.0f;
        CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, s.N, s.M, s.K, &one, dB.ptr, s.N, dA.ptr, s.K, &zero,
                          dC_blas.ptr, s.N) == CUBLAS_STATUS_SUCCESS);
        CHECK(cublasDestroy(handle) == CUBLAS_STATUS_SUCCESS);
        check_close(dC_blas.download(), dC.download(), 1e-5f);
    }
    check_clean();
}

TEST_CASE("cuemu: cuBLAS stand-in keeps column-major transposes and batches") {
    // Column-major A (3x2) and B (3x4): C (2x4) = A^T B, twice in a batch of 2 with the second B doubled.
    const int m = 2, n = 4, k = 3;
    std::vector<float> A = {1, 2, 3, 4, 5, 6};                               // columns (1,2,3), (4,5,6)
    std::vector<float> B = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1,              // batch 0: I and a ones column
                            2, 0, 0, 0, 2, 0, 0, 0, 2, 2, 2, 2};             // batch 1: twice that
    DeviceArray<float> dA(A), dB(B), dC(size_t(m) * n * 2);
    cublasHandle_t handle;
    REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    float one = 1.0f, zero = 0.0f;
    // strideA = 0: both batches use the same A
    CHECK(cublasSgemmStridedBatched(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA.ptr, k, 0, dB.ptr, k, k * n,
                                    &zero, dC.ptr, m, m * n, 2) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> want = {1, 4, 2, 5, 3, 6, 6, 15, 2, 8, 4, 10, 6, 12, 12, 30};
    CHECK(dC.download() == want);
    CHECK(cublasDestroy(handle) == CUBLAS_STATUS_SUCCESS);
    check_clean();
}

TEST_CASE("cuemu: block reduction with warp shuffles") {
    const int n = 10007;
    std::vector<float> x = random_floats(n, 3);
    DeviceArray<float> dx(x);
    for (int threads : {32, 256, 1024}) {
        INFO("threads per block ", threads);
        const int blocks = 5;
        DeviceArray<float> partial(blocks);
        for_each_order([&] {
            CUEMU_LAUNCH(block_reduce_shfl, blocks, threads, 0, 0, partial.ptr, dx.ptr, n);
            CHECK(sum_of(partial.download()) == doctest::Approx(sum_of(x)).epsilon(1e-5));
        });
    }
    check_clean();
}

TEST_CASE("cuemu: block reduction in dynamic shared memory") {
    const int n = 5000;
    std::vector<float> x = random_floats(n, 4);
    DeviceArray<float> dx(x);
    for (int threads : {64, 128, 512}) {
        INFO("threads per block ", threads);
        const int blocks = 3;
        DeviceArray<float> partial(blocks);
        for_each_order([&] {
            size_t smem = threads * sizeof(float);
            CUEMU_LAUNCH(block_reduce_dynamic_shared, blocks, threads, smem, 0, partial.ptr, dx.ptr, n);
            CHECK(sum_of(partial.download()) == doctest::Approx(sum_of(x)).epsilon(1e-5));
        });
    }
    check_clean();
}

TEST_CASE("cuemu: shared-memory histogram with atomics") {
    const int n = 20000;
    std::mt19937 rng(5);
    std::vector<unsigned char> data(n);
    std::vector<unsigned> want(256, 0);
    for (unsigned char& b : data) {
        b = static_cast<unsigned char>(rng() % 97);  // leaves most bins empty
        ++want[b];
    }
    DeviceArray<unsigned char> d_data(data);
    DeviceArray<unsigned> counts(256);
    for_each_order([&] {
        counts.zero();
        CUEMU_LAUNCH(byte_histogram, 4, 192, 0, 0, counts.ptr, d_data.ptr, n);
        CHECK(counts.download() == want);
    });
    check_clean();
}
