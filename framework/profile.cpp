// The per-kernel profile (see profile.h): a table of (kernel name -> calls, seconds, GEMM FLOPs) filled while on.
#include "framework/profile.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace strata {

namespace {

struct KernelStats {
    int64_t calls = 0;
    double seconds = 0, gemm_seconds = 0;
    int64_t gemm_flops = 0;
};

std::atomic<bool> g_on{false};
std::mutex g_mutex;
std::map<std::string, KernelStats> g_stats;  // by kernel name; guarded by g_mutex
KernelStats g_gemm;                          // every gemm_cpu call; guarded by g_mutex
double g_started = 0;
// The kernel being timed on the main thread, which the GEMMs it issues are credited to (null: none).
std::atomic<const char*> g_current{nullptr};
thread_local int t_depth = 0;  // kernel calls open on this thread

void print_at_exit() {
    if (g_on) std::fputs(profile_report().c_str(), stderr);
}

}  // namespace

double profile_clock() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool profiling() { return g_on.load(std::memory_order_relaxed); }

void set_profiling(bool on) {
    static bool registered = false;
    std::lock_guard<std::mutex> lock(g_mutex);
    if (on && !g_on) {
        g_stats.clear();
        g_gemm = KernelStats();
        g_started = profile_clock();
        if (!registered) std::atexit(print_at_exit);
        registered = true;
    }
    g_on = on;
}

KernelTimer::KernelTimer(const char* name) {
    if (!name) return;
    name_ = name;
    // Only the outermost call on the main thread is timed: a nested one is part of its caller's time, and one on a
    // worker thread runs in parallel with others.
    if (t_depth++ > 0 || omp_in_parallel()) return;
    outermost_ = true;
    g_current = name;
    start_ = profile_clock();
}

KernelTimer::~KernelTimer() {
    if (!name_) return;
    --t_depth;
    if (!outermost_) return;
    double elapsed = profile_clock() - start_;
    g_current = nullptr;
    std::lock_guard<std::mutex> lock(g_mutex);
    KernelStats& s = g_stats[name_];
    s.calls++;
    s.seconds += elapsed;
}

void profile_gemm(double seconds, int64_t flops) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_gemm.calls++;
    g_gemm.seconds += seconds;
    g_gemm.gemm_flops += flops;
    if (const char* caller = g_current.load()) {
        KernelStats& s = g_stats[caller];
        s.gemm_seconds += seconds;
        s.gemm_flops += flops;
    }
}

std::string profile_report() {
    std::lock_guard<std::mutex> lock(g_mutex);
    double wall = profile_clock() - g_started, in_kernels = 0;
    std::vector<std::pair<std::string, KernelStats>> rows(g_stats.begin(), g_stats.end());
    for (const auto& r : rows) in_kernels += r.second.seconds;
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
    auto pct = [&](double s) { return wall > 0 ? 100.0 * s / wall : 0.0; };
    auto rate = [](int64_t flops, double s) { return s > 0 ? double(flops) * 1e-9 / s : 0.0; };
    std::string out;
    char line[256];
    std::snprintf(line, sizeof line, "\nprofile: %.3f s of wall time since profiling began\n%-32s %8s %10s %7s %9s %9s %9s\n",
                  wall, "kernel", "calls", "seconds", "% wall", "GFLOP", "GFLOP/s", "GEMM s");
    out += line;
    for (const auto& [name, s] : rows) {
        std::snprintf(line, sizeof line, "%-32s %8lld %10.4f %6.1f%% %9.4g %9.1f %9.4f\n", name.c_str(),
                      (long long)s.calls, s.seconds, pct(s.seconds), double(s.gemm_flops) * 1e-9,
                      rate(s.gemm_flops, s.seconds), s.gemm_seconds);
        out += line;
    }
    std::snprintf(line, sizeof line,
                  "in kernels %.3f s (%.1f%% of wall); GEMM %.3f s (%.1f%%) at %.1f GFLOP/s, %lld calls; "
                  "outside GEMM %.1f%% of wall (outside any kernel %.1f%%)\n",
                  in_kernels, pct(in_kernels), g_gemm.seconds, pct(g_gemm.seconds),
                  rate(g_gemm.gemm_flops, g_gemm.seconds), (long long)g_gemm.calls, 100.0 - pct(g_gemm.seconds),
                  100.0 - pct(in_kernels));
    out += line;
    return out;
}

}  // namespace strata
