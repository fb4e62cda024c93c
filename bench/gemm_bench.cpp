// GEMM on the CPU: GFLOP/s of OpenBLAS, Strata's packed kernel (framework/gemm.h, the ISA this CPU runs best) and
// the fixed-order kernel of reproducible mode (framework/blas.h), on the GEMM shapes of PSPNet's convolutions,
// forward (NN) and backward (NT, TN), all measured in the same run, with each one's fraction of the FMA peak of
// the ISA it uses (measured here: OpenBLAS's ISA follows the kernel it picked, e.g. Haswell = AVX2).
//
//     build/bench/gemm_bench [--reps R] [--only TEXT] [--cpu-time]   (--only: the shapes whose name contains TEXT)
//
// --cpu-time times each call by the calling thread's CPU time instead of the wall clock, for STRATA_NUM_THREADS=1
// (every kernel then runs on that thread): on a machine shared with other jobs it leaves out the time they held
// the core, which made wall-clock figures swing by 2x there. With more threads it misses the others' work.
//
// Each figure is the best of R runs (default 3) after a warm-up; the kernels' runs are interleaved so that load from
// other processes hits them alike. It prints the CPU, the OpenBLAS kernel and the OPENBLAS_* settings it sees.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/machine.h"
#include "framework/blas.h"
#include "framework/gemm.h"
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
    {"sq 1024", false, false, 1024, 1024, 1024},
    {"l4 3x3 512->512 60x60 fwd", false, false, 512, 3600, 4608},
    {"l4 3x3 512->512 60x60 dW", false, true, 512, 4608, 3600},
    {"l4 3x3 512->512 60x60 dcol", true, false, 4608, 3600, 512},
    {"l1 3x3 64->64 119x119 fwd", false, false, 64, 14161, 576},
    {"3x3 256->256, 30x30, fwd  W.col", false, false, 256, 900, 2304},
    {"3x3 256->256, 30x30, dW   dY.colT", false, true, 256, 2304, 900},
    {"3x3 256->256, 30x30, dcol WT.dY", true, false, 2304, 900, 256},
    {"1x1 1024->256, 60x60, fwd", false, false, 256, 3600, 1024},
    {"3x3 64->64, 8x13x13, fwd", false, false, 64, 1352, 576},
    // psp18w32 at a 97x97 crop, batch 8 (bench/pspnet_bench): 4 images of 13x13 per GEMM (N = 676), the 49x49 stem
    {"p18 3x3 256->256 4x13x13 fwd", false, false, 256, 676, 2304},
    {"p18 3x3 256->256 4x13x13 dW", false, true, 256, 2304, 676},
    {"p18 3x3 256->256 4x13x13 dcol", true, false, 2304, 676, 256},
    {"p18 3x3 512->256 4x13x13 fwd", false, false, 256, 676, 4608},
    {"p18 3x3 64->64 4x13x13 fwd", false, false, 64, 676, 576},
    {"p18 3x3 64->64 4x13x13 dW", false, true, 64, 576, 676},
    {"p18 3x3 64->64 4x13x13 dcol", true, false, 576, 676, 64},
    {"p18 3x3 32->32 49x49 fwd", false, false, 32, 2401, 288},
    {"p18 3x3 32->32 49x49 dW", false, true, 32, 288, 2401},
    {"p18 3x3 32->32 49x49 dcol", true, false, 288, 2401, 32},
};

enum class Kernel { kOpenBLAS, kStrata, kFixedOrder };

bool g_cpu_time = false;  // --cpu-time

double now_s() {
    if (!g_cpu_time) return bench::seconds_now();
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

double seconds_of(Kernel kernel, const Shape& s, const std::vector<float>& A, const std::vector<float>& B,
                  std::vector<float>& C) {
    ReproducibleGemmScope mode(kernel == Kernel::kFixedOrder);
    GemmChoiceScope choice(GemmChoice::kOpenBLAS);
    int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    double t0 = now_s();
    if (kernel == Kernel::kStrata)
        gemm_packed(best_gemm_isa(), s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(),
                    s.N);
    else
        gemm_cpu(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), s.N);  // OpenBLAS or fixed
    return now_s() - t0;
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 3;
    std::string only;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = std::max(1, std::atoi(argv[++i]));
        else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (std::strcmp(argv[i], "--cpu-time") == 0)
            g_cpu_time = true;
    const int threads = num_threads();
    bench::print_machine(threads);
    const double avx2 = bench::fma_peak_gflops(false, threads), avx512 = bench::fma_peak_gflops(true, threads);
    // OpenBLAS's ISA from its kernel's name: the AVX-512 kernels are SkylakeX and Cooperlake (and Sapphire Rapids)
    const std::string core = openblas_get_corename();
    const bool blas512 = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
    const double blas_peak = blas512 ? avx512 : avx2;
    const GemmIsa isa = best_gemm_isa();
    const double strata_peak = isa == GemmIsa::kAvx512 ? avx512 : avx2;
    std::printf("FMA peak: AVX2 %.1f, AVX-512 %.1f GFLOP/s (%d threads); OpenBLAS %s runs %s, Strata runs %s\n", avx2,
                avx512, threads, core.c_str(), blas512 ? "AVX-512" : "AVX2 (or less)", gemm_isa_name(isa));
    std::printf("%-28s %18s %18s %12s\n", "GEMM (M x N x K)", "OpenBLAS (% peak)", "Strata (% peak)",
                "fixed-order");
    Generator g(1);
    for (const Shape& s : kShapes) {
        if (std::string(s.what).find(only) == std::string::npos) continue;
        std::vector<float> A(size_t(s.M * s.K)), B(size_t(s.K * s.N)), C(size_t(s.M * s.N));
        for (float& v : A) v = g.normal();
        for (float& v : B) v = g.normal();
        for (Kernel k : {Kernel::kOpenBLAS, Kernel::kStrata, Kernel::kFixedOrder}) seconds_of(k, s, A, B, C);
        double best[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < reps; ++r)
            for (Kernel k : {Kernel::kOpenBLAS, Kernel::kStrata, Kernel::kFixedOrder})
                best[int(k)] = std::min(best[int(k)], seconds_of(k, s, A, B, C));
        double gflop = 2.0 * double(s.M) * double(s.N) * double(s.K) * 1e-9;
        double blas = gflop / best[0], strata = gflop / best[1], fixed = gflop / best[2];
        std::printf("%-28s %8.1f (%5.1f%%) %8.1f (%5.1f%%) %12.1f\n", s.what, blas, 100 * blas / blas_peak, strata,
                    100 * strata / strata_peak, fixed);
        std::fflush(stdout);
    }
    return 0;
}
