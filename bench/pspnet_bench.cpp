// PSPNet on the CPU, Strata and PyTorch side by side in one run: seconds per training step and per forward pass,
// their ratio, the GFLOP/s each achieves and its fraction of this machine's FMA peak (measured here), and each
// one's peak resident memory.
//
//     make bench-pspnet [QUICK=1]          (builds this program and runs it)
//     build/bench/pspnet_bench [--quick] [--rounds R] [--steps S] [--case NAME] [--python PATH] [--gemm G]
//                              [--conv-algo auto|winograd|gemm]   (Winograd for the 3x3 convs: layers/conv2d_winograd.h)
//     build/bench/pspnet_bench --profile --case NAME [--steps S]   (Strata alone, with the per-kernel profile)
//
// Cases: psp18w32 train and forward at batch 8 x 97x97, PSPNet-50 train at 2 x 225x225, forward at 2 x 473x473 and
// train at 2 x 473x473. For each case the bench alternates R rounds of (one Strata process, one PyTorch process);
// each process builds the model, runs one warm-up step and S timed steps, and reports its times; its peak RSS
// (getrusage of the finished child) is the case's memory, the model and its steps included (for PyTorch, the
// ~230 MB that importing torch costs as well). Both run the same thread count (STRATA_NUM_THREADS, else all
// cores), with OMP_WAIT_POLICY=PASSIVE unless set. The PyTorch side is bench/pspnet_torch.py, the same
// architecture (see its header), run with Debian's python3-torch; without it the bench prints Strata's alone.
//
// A training step is what the trainer does per iteration: forward with the aux head, loss = CE + 0.4 CE_aux,
// zero_grad, backward, SGD step (momentum 0.9, weight decay 1e-4). A forward pass is eval mode under NoGradGuard.
// GFLOP = the nominal convolution work (2 x multiply-adds, padding taps included), as PyTorch's script counts it
// with hooks; Strata's own count (the FLOPs its GEMMs executed in the warm-up step) is printed beside it.
// --quick: one round, fewer steps, and no PSPNet-50 training at 473 (for a busy machine).
//
// The small model is semseg's architecture at depth 18, width 0.5 ("psp18w32"): deep stem 32/32/64, stages
// 32..256, PPM 4x64, cls 256 and aux 128 hidden channels (they scale with the width, in both implementations).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/machine.h"
#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/gemm.h"
#include "framework/optimizer.h"
#include "framework/parallel.h"
#include "framework/profile.h"
#include "framework/random.h"
#include "layers/add.h"
#include "layers/conv2d_winograd.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/pspnet.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

struct Case {
    const char* name;  // the same names as bench/pspnet_torch.py's CASES
    int depth;
    double width;
    int64_t batch, size;
    bool train;
    int steps, rounds;  // timed steps per process and rounds per implementation; --quick: fewer
    bool quick;         // part of --quick
};

const Case kCases[] = {
    {"psp18w32-train-8x97", 18, 0.5, 8, 97, true, 10, 2, true},
    {"psp18w32-fwd-8x97", 18, 0.5, 8, 97, false, 10, 2, true},
    {"psp50-train-2x225", 50, 1.0, 2, 225, true, 3, 2, true},
    {"psp50-fwd-2x473", 50, 1.0, 2, 473, false, 3, 2, true},
    {"psp50-train-2x473", 50, 1.0, 2, 473, true, 2, 1, false},
};

// The child: one case, `steps` timed steps after a warm-up; prints the line pspnet_torch.py prints.
int run_case(const Case& c, int steps, bool profile) {
    manual_seed(0);
    PSPNetConfig mc;
    mc.backbone.depth = c.depth;
    mc.backbone.width = c.width;
    mc.classes = 21;
    PSPNet model(mc);
    Tensor x = randn({c.batch, 3, c.size, c.size});
    std::vector<int32_t> lab(size_t(c.batch * c.size * c.size));
    Generator g(1);
    for (auto& v : lab) v = int32_t(g.randint(21));
    Tensor labels = from_vector_i32(lab, {c.batch, c.size, c.size});
    SGD opt({ParamGroup{"all", model.parameters()}}, SGDOptions{0.01f, 0.9f, 1e-4f});
    std::vector<double> times;
    double gflop = 0;
    for (int s = 0; s <= steps; ++s) {
        if (s == 1 && profile) set_profiling(true);  // the report (at exit) covers the timed steps
        int64_t flops0 = gemm_flop_count();
        double t0 = bench::seconds_now();
        if (c.train) {
            model.train();
            PSPNetOutput out = model.forward_all(x);
            Tensor loss = cross_entropy(out.logits, labels) + cross_entropy(out.aux_logits, labels) * 0.4f;
            opt.zero_grad();
            loss.backward();
            opt.step();
        } else {
            model.eval();
            NoGradGuard ng;
            Tensor y = model.forward(x);
        }
        if (s > 0) times.push_back(bench::seconds_now() - t0);  // step 0 warms up the allocator's cache and BLAS
        else gflop = double(gemm_flop_count() - flops0) * 1e-9;
    }
    std::printf("result seconds=");
    for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.5f", i ? "," : "", times[i]);
    std::printf(" gflop=%.3f\n", gflop);
    return 0;
}

struct ChildResult {
    bool ok = false;
    std::vector<double> seconds;
    double gflop = 0, rss_mb = 0;
    std::string output;  // for the error message when !ok
};

// Runs argv as a child process, reads its `result` line and its peak RSS.
ChildResult run_child(const std::vector<std::string>& args) {
    ChildResult r;
    int fd[2];
    if (pipe(fd) != 0) return r;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        std::vector<char*> argv;
        for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        std::fprintf(stderr, "cannot run %s: %s\n", argv[0], std::strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) r.output.append(buf, size_t(n));
    close(fd[0]);
    int status = 0;
    rusage usage{};
    wait4(pid, &status, 0, &usage);
    r.rss_mb = double(usage.ru_maxrss) / 1024.0;
    size_t at = r.output.find("result seconds=");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || at == std::string::npos) return r;
    const char* p = r.output.c_str() + at + std::strlen("result seconds=");
    while (true) {
        char* end;
        double v = std::strtod(p, &end);
        if (end == p) break;
        r.seconds.push_back(v);
        p = end;
        if (*p != ',') break;
        ++p;
    }
    if (const char* g = std::strstr(p, "gflop=")) r.gflop = std::atof(g + 6);
    r.ok = !r.seconds.empty();
    return r;
}

struct Side {
    std::vector<double> seconds;
    double gflop = 0, rss_mb = 0;
    bool ok = true;
};

void add(Side& side, const ChildResult& r, const char* who, const Case& c) {
    if (!r.ok) {
        side.ok = false;
        std::printf("  %s failed on %s:\n%s\n", who, c.name, r.output.c_str());
        return;
    }
    side.seconds.insert(side.seconds.end(), r.seconds.begin(), r.seconds.end());
    side.gflop = r.gflop;
    side.rss_mb = std::max(side.rss_mb, r.rss_mb);
}

std::string torch_script() {
    // build/bench/pspnet_bench -> bench/pspnet_torch.py of the same checkout; else the working directory's
    std::filesystem::path exe = std::filesystem::canonical("/proc/self/exe");
    std::filesystem::path beside = exe.parent_path().parent_path().parent_path() / "bench" / "pspnet_torch.py";
    if (std::filesystem::exists(beside)) return beside.string();
    return "bench/pspnet_torch.py";
}

bool torch_available(const std::string& python) {
    std::string cmd = python + " -c 'import torch' >/dev/null 2>&1";
    return access(python.c_str(), X_OK) == 0 && std::system(cmd.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, profile = false;
    int rounds = 0, steps = 0;
    std::string only, python = "/usr/bin/python3", child_case;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        bool more = i + 1 < argc;
        if (a == "--quick") quick = true;
        else if (a == "--profile") profile = true;
        else if (a == "--rounds" && more) rounds = std::max(1, std::atoi(argv[++i]));
        else if (a == "--steps" && more) steps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--case" && more) only = argv[++i];
        else if (a == "--python" && more) python = argv[++i];
        else if (a == "--gemm" && more) set_gemm_choice(parse_gemm_choice(argv[++i]));
        else if (a == "--conv-algo" && more) set_conv2d_algo(parse_conv2d_algo(argv[++i]));
        else if (a == "--run" && more) only = child_case = argv[++i];
        else {
            std::fprintf(stderr, "pspnet_bench: unknown argument '%s'\nusage: pspnet_bench [--quick] [--rounds R] "
                         "[--steps S] [--case NAME] [--python PATH] [--gemm strata|openblas] [--conv-algo auto|winograd|gemm] [--profile]\n",
                         a.c_str());
            return 2;
        }
    }
    std::vector<Case> cases;
    for (const Case& c : kCases)
        if ((only.empty() || only == c.name) && (!quick || c.quick || !only.empty())) cases.push_back(c);
    if (cases.empty()) {
        std::fprintf(stderr, "pspnet_bench: no case named '%s'; the cases are:", only.c_str());
        for (const Case& c : kCases) std::fprintf(stderr, " %s", c.name);
        std::fprintf(stderr, "\n");
        return 2;
    }
    if (!child_case.empty() || profile)
        return run_case(cases.front(), steps > 0 ? steps : cases.front().steps, profile);

    // Both sides use libgomp, whose threads spin between parallel regions; on a shared machine that loses whole
    // time slices (docs/PERFORMANCE.md), so the children wait passively, as Strata's programs do, unless told.
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    const int threads = num_threads();
    bench::print_machine(threads);
    std::printf("Strata:   gemm=%s (%s kernel), conv_algo=%s; OMP_WAIT_POLICY=%s for both sides\n",
                gemm_choice_name(gemm_choice()), gemm_isa_name(best_gemm_isa()), conv2d_algo_name(conv2d_algo()),
                std::getenv("OMP_WAIT_POLICY"));
    const double avx2 = bench::fma_peak_gflops(false, threads), avx512 = bench::fma_peak_gflops(true, threads);
    const double peak = std::max(avx2, avx512);
    std::printf("FMA peak: AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s (%d threads, measured now)\n", avx2, avx512,
                threads);
    const bool torch = torch_available(python);
    const std::string script = torch_script();
    if (!torch) std::printf("PyTorch: not found (%s -c 'import torch' failed): Strata's figures alone\n", python.c_str());
    std::printf("%%peak = GFLOP/s / %.1f (the better ISA's FMA peak); RSS = peak resident memory of the process\n\n",
                peak);
    std::printf("%-20s %9s %9s %6s %7s %7s %8s %8s %6s %6s %8s %8s\n", "case", "Strata s", "torch s", "ratio",
                "GFLOP", "S GEMM", "S GF/s", "T GF/s", "S%pk", "T%pk", "S RSS MB", "T RSS MB");
    std::fflush(stdout);

    const std::string self = std::filesystem::canonical("/proc/self/exe").string();
    for (const Case& c : cases) {
        int n_steps = steps > 0 ? steps : quick ? std::min(c.steps, c.depth == 18 ? 3 : 1) : c.steps;
        int n_rounds = rounds > 0 ? rounds : quick ? 1 : c.rounds;
        Side strata_side, torch_side;
        for (int r = 0; r < n_rounds; ++r) {
            add(strata_side,
                run_child({self, "--run", c.name, "--steps", std::to_string(n_steps), "--gemm",
                           gemm_choice_name(gemm_choice()), "--conv-algo", conv2d_algo_name(conv2d_algo())}),
                "Strata", c);
            if (torch)
                add(torch_side, run_child({python, script, c.name, std::to_string(n_steps), std::to_string(threads)}),
                    "PyTorch", c);
        }
        double s = strata_side.ok ? bench::median(strata_side.seconds) : 0;
        double t = torch && torch_side.ok ? bench::median(torch_side.seconds) : 0;
        double gflop = t > 0 ? torch_side.gflop : strata_side.gflop;  // the hooks' nominal count when there is one
        auto rate = [&](double sec) { return sec > 0 ? gflop / sec : 0.0; };
        auto pct = [&](double sec) { return sec > 0 && peak > 0 ? 100.0 * rate(sec) / peak : 0.0; };
        if (t > 0)
            std::printf("%-20s %9.3f %9.3f %6.2f %7.1f %7.1f %8.1f %8.1f %5.0f%% %5.0f%% %8.0f %8.0f\n", c.name, s, t,
                        s > 0 ? s / t : 0.0, gflop, strata_side.gflop, rate(s), rate(t), pct(s), pct(t),
                        strata_side.rss_mb, torch_side.rss_mb);
        else  // no PyTorch figures: dashes in its columns
            std::printf("%-20s %9.3f %9s %6s %7.1f %7.1f %8.1f %8s %5.0f%% %6s %8.0f %8s\n", c.name, s, "-", "-", gflop,
                        strata_side.gflop, rate(s), "-", pct(s), "-", strata_side.rss_mb, "-");
        std::fflush(stdout);
    }
    std::printf("\nratio = Strata s / PyTorch s (below 1: Strata ahead). GFLOP = nominal conv work per step (PyTorch's"
                " hooks); S GEMM = what Strata's GEMMs executed. Load average at the end: %s\n",
                bench::load_average().c_str());
    return 0;
}
