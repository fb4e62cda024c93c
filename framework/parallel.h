// One parallel-for over the cores, used by every CPU kernel.
//
// It runs on OpenMP, and the build links OpenBLAS's OpenMP variant, so the framework's loops and BLAS share one
// pool of threads: a GEMM called from serial code uses all threads, and a GEMM called inside a parallel_for body
// runs single-threaded on its own thread (OpenBLAS checks omp_in_parallel). The cores are never oversubscribed.
//
// The thread count is STRATA_NUM_THREADS if set, else the number of cores; set_num_threads changes it for both.
#pragma once

#include <cstdint>
#include <functional>

namespace strata {

int num_threads();
void set_num_threads(int n);

// Calls body(lo, hi) on disjoint chunks that cover [begin, end). Chunks have at least `grain` iterations, so that
// small loops stay on one thread. body must not throw.
// NOTE: the chunk boundaries depend on the thread count. A reduction whose result must not depend on it (a float
// sum) chooses its own fixed chunks and combines them in a fixed order, as layers/sum.cpp does.
void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace strata
