// PSPNet on the CPU: seconds per training step and per forward pass, next to PyTorch 1.13 figures measured earlier
// on a 2-core Zen 4 machine (psp18w32 at 8x97, PSPNet-50 at 2x225 and 2x473, 2 threads); they were not taken in
// the same run, so the ratios are rough.
//
//     build/bench/pspnet_bench [--quick]
//
// A training step is what trainer.cpp does per iteration: forward with the aux head, loss = CE + 0.4 CE_aux,
// zero_grad, backward, SGD step (momentum 0.9, weight decay 1e-4). A forward pass is eval mode under NoGradGuard.
// PyTorch's column is its 1-thread figure when STRATA_NUM_THREADS=1, else its 2-thread one. Each figure is the median of the timed steps after one warm-up step. --quick runs the small model only.
//
// The small model is semseg's architecture at depth 18, width 0.5 ("psp18w32" in performance.md: deep stem
// 32/32/64, stages 32..256, PPM 4x64, output stride 8). Our heads scale with the width (cls 256, aux 128 hidden
// channels) where the PyTorch reference used 128/64: ours does slightly more work.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "framework/autograd.h"
#include "framework/optimizer.h"
#include "framework/parallel.h"
#include "framework/random.h"
#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/pspnet.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

struct Case {
    const char* name;
    int depth;
    double width;
    int64_t batch, size;
    bool train;
    int steps;
    double pytorch_1thread, pytorch_2threads;  // performance.md section 3, oneDNN
};

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double run(const Case& c) {
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
    for (int s = 0; s <= c.steps; ++s) {
        double t0 = now();
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
        if (s > 0) times.push_back(now() - t0);  // step 0 warms up the allocator's cache and OpenBLAS
    }
    return median(times);
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    std::vector<Case> cases = {
        {"psp18w32 train 8x97", 18, 0.5, 8, 97, true, 10, 0.354, 0.204},
        {"psp18w32 fwd   8x97", 18, 0.5, 8, 97, false, 10, 0.103, 0.054},
        {"psp50    train 2x225", 50, 1.0, 2, 225, true, 3, 5.346, 2.807},
        {"psp50    fwd   2x473", 50, 1.0, 2, 473, false, 3, 6.758, 3.494},
    };
    std::printf("threads: %d   (load average: ", num_threads());
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        char buf[64] = {};
        if (std::fgets(buf, sizeof buf, f)) buf[std::strcspn(buf, " ")] = 0, std::printf("%s", buf);
        std::fclose(f);
    }
    std::printf(")\n%-22s %12s %14s %10s\n", "case", "s/step", "PyTorch 1.13", "ratio");
    if (num_threads() > 2) std::printf("(PyTorch was measured with 2 threads; compare with care)\n");
    for (const Case& c : cases) {
        if (quick && c.depth != 18) continue;
        double s = run(c);
        double ref = num_threads() == 1 ? c.pytorch_1thread : c.pytorch_2threads;
        std::printf("%-22s %12.3f %14.3f %9.2fx\n", c.name, s, ref, s / ref);
        std::fflush(stdout);
    }
    return 0;
}
