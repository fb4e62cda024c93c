// What the benchmarks say about the machine they ran on, so that every figure comes with its context: the CPU
// (family, model, the ISA extensions that matter for float GEMM), the OpenBLAS kernel in use and the OPENBLAS_*
// settings seen in the environment (reported, never changed), the load average, and the FMA peak measured here.
//
// The FMA peak is the physical ceiling of float32 arithmetic: each thread runs a tight loop of 12 independent
// vector FMA chains (enough to cover the latency of two FMA pipes), 8 lanes with AVX2 and 16 with AVX-512. On a
// core with 256-bit pipes (Zen 4) both read the same; on one with full-width AVX-512 (Zen 5, Intel server cores)
// AVX-512 reads twice AVX2. The probes are compiled with target attributes, so the binary runs on any x86-64 and
// reports 0 for an ISA the CPU lacks.
#pragma once

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace strata::bench {

inline double seconds_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The median of timings (0 for none): what the benchmarks report, robust to one disturbed run.
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// FLOPs done by `iters` rounds of 12 FMA chains on `lanes`-wide vectors.
inline double fma_probe_flops(int64_t iters, int lanes) { return double(iters) * 12.0 * lanes * 2.0; }

__attribute__((target("avx2,fma"))) inline float fma_probe_avx2(int64_t iters) {
    __m256 acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(float(j));
    const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-6f);
    for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
        for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], mul, add);
    float out[8], sum = 0;
    for (int j = 1; j < 12; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    _mm256_storeu_ps(out, acc[0]);
    for (float v : out) sum += v;
    return sum;
}

__attribute__((target("avx512f"))) inline float fma_probe_avx512(int64_t iters) {
    __m512 acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_set1_ps(float(j));
    const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-6f);
    for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
        for (int j = 0; j < 12; ++j) acc[j] = _mm512_fmadd_ps(acc[j], mul, add);
    float out[16], sum = 0;
    for (int j = 1; j < 12; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    _mm512_storeu_ps(out, acc[0]);
    for (float v : out) sum += v;
    return sum;
}

inline bool cpu_has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
inline bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f"); }

// GFLOP/s of `threads` threads running the probe together; the best of 5 runs of 15 to 60 ms each.
// 0 when the CPU lacks the ISA.
inline double fma_peak_gflops(bool avx512, int threads) {
    if (avx512 ? !cpu_has_avx512() : !cpu_has_avx2_fma()) return 0;
    const int lanes = avx512 ? 16 : 8;
    const int64_t iters = 20'000'000;  // 3.8 (AVX2) or 7.7 GFLOP per thread: 30 ms at 250 GFLOP/s
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < 5; ++r) {
        double t0 = seconds_now();
#pragma omp parallel num_threads(threads)
        {
            float s = avx512 ? fma_probe_avx512(iters) : fma_probe_avx2(iters);
#pragma omp critical
            sink = sink + s;
        }
        double t = seconds_now() - t0;
        best = std::max(best, fma_probe_flops(iters, lanes) * threads / t * 1e-9);
    }
    return best;
}

// "AMD EPYC, family 26 model 2" and the ISA extensions that matter for float GEMM.
inline std::string cpu_description() {
    std::ifstream in("/proc/cpuinfo");
    std::string line, name = "unknown CPU", family = "?", model = "?", flags;
    while (std::getline(in, line)) {
        auto value = [&] { return line.substr(line.find(':') + 2); };
        if (line.rfind("model name", 0) == 0 && name == "unknown CPU") name = value();
        else if (line.rfind("cpu family", 0) == 0 && family == "?") family = value();
        else if (line.rfind("model\t", 0) == 0 && model == "?") model = value();
        else if (line.rfind("flags", 0) == 0 && flags.empty()) flags = " " + value() + " ";
    }
    std::string isa;
    for (const char* f : {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile"})
        if (flags.find(std::string(" ") + f + " ") != std::string::npos) isa += std::string(isa.empty() ? "" : " ") + f;
    return name + ", family " + family + " model " + model + ", " + (isa.empty() ? "no AVX2" : isa);
}

// The OPENBLAS_* variables of the environment, as "NAME=value ..." ("none").
inline std::string openblas_environment() {
    std::string out;
    for (char** e = ::environ; *e; ++e)
        if (std::strncmp(*e, "OPENBLAS_", 9) == 0) out += std::string(out.empty() ? "" : " ") + *e;
    return out.empty() ? "none" : out;
}

inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five;
    in >> one >> five;
    return one + " (1 min), " + five + " (5 min)";
}

// The header every benchmark prints first.
inline void print_machine(int threads) {
    std::printf("CPU:      %s\n", cpu_description().c_str());
    std::printf("OpenBLAS: kernel %s (%s); OPENBLAS_* in the environment: %s\n", openblas_get_corename(),
                openblas_get_config(), openblas_environment().c_str());
    std::printf("threads:  %d; load average %s\n", threads, load_average().c_str());
}

}  // namespace strata::bench
