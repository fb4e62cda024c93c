// The per-kernel profile (`profile=1` in any program): where the time of a run goes, kernel by kernel.
//
// Every kernel call goes through its KernelTable (framework/dispatch.h), so that is where the time is taken: while
// profiling is on, a call from serial code is timed and added to its kernel's line (conv2d_forward,
// conv2d_backward, batchnorm2d_backward, ...: the layer type and the direction). A kernel called from inside
// another kernel counts in the outer one only. gemm_cpu (framework/blas.h) adds its time and FLOPs too, both to a
// line of its own and, as FLOPs, to the kernel that called it, so each layer's line shows the GFLOP/s it achieves.
// The report, printed when the program exits, ends with the share of the wall time spent outside GEMM: what a
// faster GEMM cannot win back.
//
//     build/bin/train configs/contextscenes.json profile=1
//
// Off (the default) it costs one relaxed atomic load per kernel call. Times are host times: they mean what they
// say on the CPU; CUDA kernels are asynchronous, so their lines show the launch cost only.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

bool profiling();
// On: clears the counts, starts the wall clock, and prints the report to stderr when the process exits.
void set_profiling(bool on);
// The report so far, as text (what is printed at exit).
std::string profile_report();

// Times one kernel call when profiling is on and the call is the outermost one on the main thread; with a null
// name it does nothing. KernelTable's calls create one; other code does not need to.
class KernelTimer {
public:
    explicit KernelTimer(const char* name);
    ~KernelTimer();
    KernelTimer(const KernelTimer&) = delete;
    KernelTimer& operator=(const KernelTimer&) = delete;

private:
    const char* name_ = nullptr;
    bool outermost_ = false;
    double start_ = 0;
};

// gemm_cpu's share: `seconds` (0 when it ran inside a parallel region, where it is part of its caller's time)
// and the FLOPs it did.
void profile_gemm(double seconds, int64_t flops);
double profile_clock();  // seconds, monotonic

}  // namespace strata
