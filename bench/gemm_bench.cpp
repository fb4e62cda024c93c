// The cost of reproducible mode: GFLOP/s of gemm_cpu on OpenBLAS and on the fixed-order kernel (framework/blas.h)
// for the GEMM shapes of a PSPNet convolution, forward (NN) and backward (NT, TN), measured in the same run.
//
//     build/bench/gemm_bench [--reps R]
//
// Each figure is the best of R runs (default 3) after a warm-up; the two kernels' runs are interleaved so that load
// from other processes hits both alike. It prints the CPU and the OpenBLAS core type it was told to use, if any.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "framework/blas.h"
#include "framework/parallel.h"
#include "framework/random.h"

using namespace strata;

namespace {

struct Shape {
    const char* what;
    bool ta, tb;
    int64_t M, N, K;
};

// conv 3x3 256->256 on a 30x30 map (one image): W (256, 2304) · col (2304, 900), and its two backward GEMMs;
// a 1x1 conv 1024->256 on 60x60; the small maps of a 97x97 training crop (8 images of 13x13 in one GEMM).
const Shape kShapes[] = {
    {"3x3 256->256, 30x30, fwd  W.col", false, false, 256, 900, 2304},
    {"3x3 256->256, 30x30, dW   dY.colT", false, true, 256, 2304, 900},
    {"3x3 256->256, 30x30, dcol WT.dY", true, false, 2304, 900, 256},
    {"1x1 1024->256, 60x60, fwd", false, false, 256, 3600, 1024},
    {"3x3 64->64, 8x13x13, fwd", false, false, 64, 1352, 576},
};

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

double seconds_of(bool reproducible, const Shape& s, const std::vector<float>& A, const std::vector<float>& B,
                  std::vector<float>& C) {
    ReproducibleGemmScope mode(reproducible);
    int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    auto t0 = std::chrono::steady_clock::now();
    gemm_cpu(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), s.N);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 3;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::printf("CPU: %s, %d threads, OPENBLAS_CORETYPE=%s\n", cpu_model().c_str(), num_threads(),
                coretype ? coretype : "(unset: OpenBLAS detects the CPU)");
    std::printf("%-34s %12s %12s %8s\n", "GEMM (M x N x K)", "OpenBLAS", "fixed-order", "ratio");
    Generator g(1);
    for (const Shape& s : kShapes) {
        std::vector<float> A(size_t(s.M * s.K)), B(size_t(s.K * s.N)), C(size_t(s.M * s.N));
        for (float& v : A) v = g.normal();
        for (float& v : B) v = g.normal();
        seconds_of(false, s, A, B, C);  // warm-up: pages touched, threads started
        seconds_of(true, s, A, B, C);
        double blas = 1e30, fixed = 1e30;
        for (int r = 0; r < reps; ++r) {
            blas = std::min(blas, seconds_of(false, s, A, B, C));
            fixed = std::min(fixed, seconds_of(true, s, A, B, C));
        }
        double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
        std::printf("%-34s %8.1f GF/s %8.1f GF/s %7.1fx\n", s.what, flops / blas * 1e-9, flops / fixed * 1e-9,
                    blas > 0 ? fixed / blas : 0.0);
    }
    return 0;
}
