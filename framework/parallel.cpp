// parallel_for on OpenMP (see parallel.h for why OpenMP).
#include "framework/parallel.h"

#include <omp.h>

#include <cstdlib>

namespace strata {

namespace {
int initial_threads() {
    if (const char* env = std::getenv("STRATA_NUM_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return n;
    }
    return omp_get_num_procs();
}
int g_threads = 0;
}  // namespace

int num_threads() {
    if (g_threads == 0) set_num_threads(initial_threads());
    return g_threads;
}

void set_num_threads(int n) {
    g_threads = n > 0 ? n : 1;
    omp_set_num_threads(g_threads);  // OpenBLAS's OpenMP build reads the same setting
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    int64_t n = end - begin;
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = n / grain;
    int threads = num_threads();
    if (chunks > threads) chunks = threads;
    if (chunks <= 1 || omp_in_parallel()) {
        body(begin, end);
        return;
    }
    // One contiguous chunk per thread: equal shares, deterministic boundaries.
#pragma omp parallel for num_threads(int(chunks)) schedule(static, 1)
    for (int64_t c = 0; c < chunks; ++c) {
        int64_t lo = begin + n * c / chunks;
        int64_t hi = begin + n * (c + 1) / chunks;
        body(lo, hi);
    }
}

}  // namespace strata
