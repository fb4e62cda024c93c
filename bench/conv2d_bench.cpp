// conv2d on the CPU: forward and backward GFLOP/s for the convolutions of PSPNet-50 at a 473x473 crop (60x60
// feature map; layer2's first convs read the 119x119 map of layer1), on the CPU paths of conv2d measured in the
// same run: implicit GEMM (conv_algo=gemm: the GEMM packs col's panels straight from x), im2col (the whole col
// matrix built, then the same GEMM) and, for the stride-1 3x3 convs, Winograd F(4x4, 3x3) (conv_algo=winograd:
// forward and dx by Winograd, dW by implicit GEMM), each as a fraction of this machine's FMA peak.
//
//     build/bench/conv2d_bench [--batch N] [--feature F] [--reps R] [--layer TEXT]
//     build/bench/conv2d_bench --net psp18w32 [--batch N] [--reps R] [--layer TEXT]
//
// Defaults: batch 2, F = 60 (a 473x473 crop), 3 timed runs after a warm-up. --feature 13 --batch 8 gives the
// small-map case of 97x97 crops (layer1 map 2F-1 = 25), where conv2d puts several images into one GEMM (column G).
// --layer keeps only the layers whose name contains TEXT (e.g. --layer "3x3").
// --net psp18w32: instead, the convolutions of the small model of `make bench-pspnet` (depth 18, width 0.5) at its
// 97x97 crop (default batch 8): maps of 49, 25 and 13 pixels, 32..512 channels, where the GEMMs are small.
//
// What is timed, for each path:
//   fwd   conv2d(x, weight, bias) under NoGradGuard: the GEMM(s) (with im2col before them on the im2col path),
//         the bias, the allocation of the output and scratch (served by the CPU allocator's cache).
//   bwd   conv2d_grads(dy, x, weight, ..., dx, dweight and dbias): dW = dY·colᵀ, dcol = Wᵀ·dY and col2im (in
//         chunks of channels with implicit GEMM), db. What the autograd node runs, without the engine's bookkeeping.
// Each figure is the best of R runs; the runs of the four measurements are interleaved, so that a burst of load
// from other processes hits both paths alike. FLOPs are the nominal 2*N*K*C*R*S*P*Q per GEMM pass (padding taps
// included, as both paths execute them): forward 1 pass, backward 2 (dX and dW). Winograd is counted in the same
// nominal FLOPs (it does 4x fewer multiplies in its GEMMs), so it can exceed 100% of the peak. "%pk" is the rate
// over the FMA peak of the ISA the GEMM uses (bench/machine.h measures it at the start, on all threads). "err" is
// Winograd's largest difference from implicit GEMM in y, over the largest |y|.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/random.h"
#include "bench/machine.h"
#include "framework/gemm.h"
#include "layers/conv2d.h"
#include "layers/conv2d_winograd.h"

using namespace strata;

namespace {

// Where a layer's input map comes from; its size depends on the crop (--feature).
enum class Map { kLayer1, kFeature, kBin };  // kBin: a fixed map size, `bin` (PPM bins, psp18w32's maps)

struct Layer {
    const char* name;
    Map map;
    int64_t bin;      // the map size for Map::kBin (PPM); unused otherwise
    int64_t C, K, R;  // input channels, output channels, kernel size (square)
    int64_t stride, pad, dil;
    bool bias;
};

// PSPNet-50 (semseg layout) at 473x473: layer1 leaves a 119x119 map, layer2 strides to 60x60 (the feature map F),
// layer3/layer4 are dilated 2/4 at 60x60, the PPM pools to 1/2/3/6, then the heads. "layer2.x" stands for every
// block after the first.
const Layer kLayers[] = {
    {"layer2.0.conv1 1x1 256->128", Map::kLayer1, 0, 256, 128, 1, 1, 0, 1, false},
    {"layer2.0.conv2 3x3 s2 128->128", Map::kLayer1, 0, 128, 128, 3, 2, 1, 1, false},
    {"layer2.0.downsample 1x1 s2 256->512", Map::kLayer1, 0, 256, 512, 1, 2, 0, 1, false},
    {"layer2.x.conv1 1x1 512->128", Map::kFeature, 0, 512, 128, 1, 1, 0, 1, false},
    {"layer2.x.conv2 3x3 128->128", Map::kFeature, 0, 128, 128, 3, 1, 1, 1, false},
    {"layer2.x.conv3 1x1 128->512", Map::kFeature, 0, 128, 512, 1, 1, 0, 1, false},
    {"layer3.0.conv1 1x1 512->256", Map::kFeature, 0, 512, 256, 1, 1, 0, 1, false},
    {"layer3.0.downsample 1x1 512->1024", Map::kFeature, 0, 512, 1024, 1, 1, 0, 1, false},
    {"layer3.x.conv1 1x1 1024->256", Map::kFeature, 0, 1024, 256, 1, 1, 0, 1, false},
    {"layer3.x.conv2 3x3 d2 256->256", Map::kFeature, 0, 256, 256, 3, 1, 2, 2, false},
    {"layer3.x.conv3 1x1 256->1024", Map::kFeature, 0, 256, 1024, 1, 1, 0, 1, false},
    {"layer4.0.conv1 1x1 1024->512", Map::kFeature, 0, 1024, 512, 1, 1, 0, 1, false},
    {"layer4.0.downsample 1x1 1024->2048", Map::kFeature, 0, 1024, 2048, 1, 1, 0, 1, false},
    {"layer4.x.conv1 1x1 2048->512", Map::kFeature, 0, 2048, 512, 1, 1, 0, 1, false},
    {"layer4.x.conv2 3x3 d4 512->512", Map::kFeature, 0, 512, 512, 3, 1, 4, 4, false},
    {"layer4.x.conv3 1x1 512->2048", Map::kFeature, 0, 512, 2048, 1, 1, 0, 1, false},
    {"ppm bin1 1x1 2048->512", Map::kBin, 1, 2048, 512, 1, 1, 0, 1, false},
    {"ppm bin2 1x1 2048->512", Map::kBin, 2, 2048, 512, 1, 1, 0, 1, false},
    {"ppm bin3 1x1 2048->512", Map::kBin, 3, 2048, 512, 1, 1, 0, 1, false},
    {"ppm bin6 1x1 2048->512", Map::kBin, 6, 2048, 512, 1, 1, 0, 1, false},
    {"cls 3x3 4096->512", Map::kFeature, 0, 4096, 512, 3, 1, 1, 1, false},
    {"cls final 1x1 512->21", Map::kFeature, 0, 512, 21, 1, 1, 0, 1, true},
    {"aux 3x3 1024->256", Map::kFeature, 0, 1024, 256, 3, 1, 1, 1, false},
    {"aux final 1x1 256->21", Map::kFeature, 0, 256, 21, 1, 1, 0, 1, true},
};

// psp18w32 (semseg's ResNet-18 layout at width 0.5, deep stem, output stride 8) at a 97x97 crop: the stem leaves
// 49x49, the max pool 25x25, layer2 strides to 13x13, layer3/layer4 are dilated 2/4 at 13x13. "x" stands for the
// repeated 3x3 convs of a stage (3 of each per step besides the first block's conv1).
const Layer kPsp18Layers[] = {
    {"stem.0 3x3 s2 3->32", Map::kBin, 97, 3, 32, 3, 2, 1, 1, false},
    {"stem.3 3x3 32->32", Map::kBin, 49, 32, 32, 3, 1, 1, 1, false},
    {"stem.6 3x3 32->64", Map::kBin, 49, 32, 64, 3, 1, 1, 1, false},
    {"layer1.0.conv1 3x3 64->32", Map::kBin, 25, 64, 32, 3, 1, 1, 1, false},
    {"layer1.0.downsample 1x1 64->32", Map::kBin, 25, 64, 32, 1, 1, 0, 1, false},
    {"layer1.x 3x3 32->32", Map::kBin, 25, 32, 32, 3, 1, 1, 1, false},
    {"layer2.0.conv1 3x3 s2 32->64", Map::kBin, 25, 32, 64, 3, 2, 1, 1, false},
    {"layer2.0.downsample 1x1 s2 32->64", Map::kBin, 25, 32, 64, 1, 2, 0, 1, false},
    {"layer2.x 3x3 64->64", Map::kBin, 13, 64, 64, 3, 1, 1, 1, false},
    {"layer3.0.conv1 3x3 d2 64->128", Map::kBin, 13, 64, 128, 3, 1, 2, 2, false},
    {"layer3.0.downsample 1x1 64->128", Map::kBin, 13, 64, 128, 1, 1, 0, 1, false},
    {"layer3.x 3x3 d2 128->128", Map::kBin, 13, 128, 128, 3, 1, 2, 2, false},
    {"layer4.0.conv1 3x3 d4 128->256", Map::kBin, 13, 128, 256, 3, 1, 4, 4, false},
    {"layer4.0.downsample 1x1 128->256", Map::kBin, 13, 128, 256, 1, 1, 0, 1, false},
    {"layer4.x 3x3 d4 256->256", Map::kBin, 13, 256, 256, 3, 1, 4, 4, false},
    {"ppm bin6 1x1 256->64", Map::kBin, 6, 256, 64, 1, 1, 0, 1, false},
    {"cls 3x3 512->256", Map::kBin, 13, 512, 256, 3, 1, 1, 1, false},
    {"cls final 1x1 256->21", Map::kBin, 13, 256, 21, 1, 1, 0, 1, true},
    {"aux 3x3 128->128", Map::kBin, 13, 128, 128, 3, 1, 1, 1, false},
};

double time_s(const std::function<void()>& f) {
    double t0 = bench::seconds_now();
    f();
    return bench::seconds_now() - t0;
}

// Uniform [-1, 1) values, filled in parallel (the generator's sequential loop is slow for 500 MB buffers).
Tensor random_tensor(const Shape& shape, uint64_t key) {
    Tensor t = empty(shape);
    float* p = t.f32();
    parallel_for(0, t.numel(), 1 << 16, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) p[i] = 2.0f * u64_to_unit_float(random_u64(key, uint64_t(i))) - 1.0f;
    });
    return t;
}

// CPU time used by the whole machine (all processes, all cores) and by this process, in seconds. Their difference
// over the run is what other processes took from the 2 cores while we measured.
double machine_busy_s() {
    std::ifstream f("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    return (user + nice + system + irq + softirq + steal) / double(sysconf(_SC_CLK_TCK));
}

double own_cpu_s() {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Totals {
    double flop = 0, conv_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
    int64_t batch = 2, feature = 60;
    int reps = 3;
    std::string only, net = "pspnet50";
    bool batch_given = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--batch" && i + 1 < argc)
            batch = std::atoll(argv[++i]), batch_given = true;
        else if (a == "--net" && i + 1 < argc)
            net = argv[++i];
        else if (a == "--feature" && i + 1 < argc)
            feature = std::atoll(argv[++i]);
        else if (a == "--reps" && i + 1 < argc)
            reps = std::atoi(argv[++i]);
        else if (a == "--layer" && i + 1 < argc)
            only = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: %s [--net pspnet50|psp18w32] [--batch N] [--feature F] [--reps R] [--layer TEXT]\n",
                         argv[0]);
            return 2;
        }
    }
    const bool psp18 = net == "psp18w32";
    if (!psp18 && net != "pspnet50") {
        std::fprintf(stderr, "--net must be pspnet50 or psp18w32, got %s\n", net.c_str());
        return 2;
    }
    if (psp18 && !batch_given) batch = 8;
    if (batch < 1 || feature < 6 || reps < 1) {
        std::fprintf(stderr, "need --batch >= 1, --feature >= 6, --reps >= 1\n");
        return 2;
    }
    NoGradGuard no_grad;
    double t_start = bench::seconds_now(), busy_start = machine_busy_s(), own_start = own_cpu_s();
    int64_t crop = 8 * (feature - 1) + 1, layer1_map = 2 * feature - 1;
    if (psp18)
        std::printf("conv2d on the CPU: psp18w32 convs at a 97x97 crop, batch %lld, %d threads, best of %d runs after "
                    "a warm-up\n",
                    (long long)batch, num_threads(), reps);
    else
        std::printf(
            "conv2d on the CPU: PSPNet-50 convs at a %lldx%lld crop (%lldx%lld features), batch %lld, %d threads, "
            "best of %d runs after a warm-up\n",
            (long long)crop, (long long)crop, (long long)feature, (long long)feature, (long long)batch, num_threads(),
            reps);
    bench::print_machine(num_threads());
    const GemmIsa isa = best_gemm_isa();
    const double peak = bench::fma_peak_gflops(isa == GemmIsa::kAvx512, num_threads());
    std::printf("GEMM:     %s, micro-kernel %s; FMA peak of that ISA on %d threads: %.1f GFLOP/s\n\n",
                gemm_choice_name(gemm_choice()), gemm_isa_name(isa), num_threads(), peak);
    constexpr int kRuns = 6;  // fwd implicit, fwd im2col, fwd Winograd, bwd implicit, bwd im2col, bwd Winograd
    const char* names[kRuns] = {"fwd implicit GEMM", "fwd im2col", "fwd Winograd",
                                "bwd implicit GEMM", "bwd im2col", "bwd Winograd"};
    std::printf("%-36s %4s %3s %7s |", "", "", "", "");
    for (int i = 0; i < kRuns; ++i) std::printf(" %-21s%s", names[i], i == 2 ? " |" : "");
    std::printf(" |\n%-36s %4s %3s %7s |", "layer", "map", "G", "GFLOP");
    for (int i = 0; i < kRuns; ++i) std::printf(" %8s %6s %4s %s", "ms", "GF/s", "%pk", i == 2 ? " |" : "");
    std::printf(" | %7s\n", "err");

    Totals total[kRuns];
    double lowest[kRuns] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    const Layer* first = psp18 ? std::begin(kPsp18Layers) : std::begin(kLayers);
    const Layer* last = psp18 ? std::end(kPsp18Layers) : std::end(kLayers);
    for (const Layer* layer = first; layer != last; ++layer) {
        const Layer& L = *layer;
        if (std::string(L.name).find(only) == std::string::npos) continue;
        int64_t H = L.map == Map::kLayer1 ? layer1_map : L.map == Map::kFeature ? feature : L.bin;
        Conv2dOptions o{L.stride, L.pad, L.dil};
        Shape x_shape{batch, L.C, H, H}, w_shape{L.K, L.C, L.R, L.R};
        Conv2dShape s = conv2d_shape(x_shape, w_shape, o);
        const double flop = 2.0 * double(s.N) * double(s.K) * double(s.C * s.R * s.S) * double(s.P * s.Q);

        Tensor x = random_tensor(x_shape, 1), w = random_tensor(w_shape, 2);
        Tensor b = L.bias ? random_tensor({L.K}, 3) : Tensor();
        Tensor dy = random_tensor({s.N, s.K, s.P, s.Q}, 4);
        enum class Path { kImplicit, kIm2col, kWinograd };
        auto on_path = [](Path path, const std::function<void()>& f) {
            set_conv2d_implicit_gemm(path != Path::kIm2col);
            Conv2dAlgoScope algo(path == Path::kWinograd ? Conv2dAlgo::kWinograd : Conv2dAlgo::kGemm);
            f();
            set_conv2d_implicit_gemm(true);
        };
        Tensor y;
        auto fwd = [&] { y = conv2d(x, w, b, o); };
        auto bwd = [&] { Conv2dGrads g = conv2d_grads(dy, x, w, o, true, true, L.bias); };
        const std::function<void()> runs[kRuns] = {
            [&] { on_path(Path::kImplicit, fwd); }, [&] { on_path(Path::kIm2col, fwd); },
            [&] { on_path(Path::kWinograd, fwd); }, [&] { on_path(Path::kImplicit, bwd); },
            [&] { on_path(Path::kIm2col, bwd); },   [&] { on_path(Path::kWinograd, bwd); }};
        const bool winograd = L.R == 3 && L.stride == 1;  // the convs Winograd computes

        // warm-up (first-touch page faults, the allocator cache), then interleaved timed runs
        for (int i = 0; i < kRuns; ++i)
            if (winograd || i % 3 != 2) runs[i]();
        double err = 0;
        if (winograd) {  // Winograd's y against implicit GEMM's
            runs[0]();
            std::vector<float> want = y.to_vector();
            runs[2]();
            std::vector<float> got = y.to_vector();
            double largest = 0;
            for (size_t i = 0; i < want.size(); ++i) {
                err = std::max(err, double(std::fabs(got[i] - want[i])));
                largest = std::max(largest, double(std::fabs(want[i])));
            }
            err /= largest;
        }
        double best[kRuns] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < reps; ++r)
            for (int i = 0; i < kRuns; ++i)
                if (winograd || i % 3 != 2) best[i] = std::min(best[i], time_s(runs[i]));
        std::printf("%-36s %4lld %3lld %7.2f |", L.name, (long long)H, (long long)s.images_per_gemm, flop * 1e-9);
        for (int i = 0; i < kRuns; ++i) {
            const char* bar = i == 2 ? " |" : "";
            if (!winograd && i % 3 == 2) {
                std::printf(" %8s %6s %4s %s", "-", "-", "-", bar);
                continue;
            }
            const double f = i < 3 ? flop : 2 * flop, gf = f / best[i] * 1e-9;
            std::printf(" %8.2f %6.1f %3.0f%% %s", best[i] * 1e3, gf, 100 * gf / peak, bar);
            total[i].flop += f, total[i].conv_s += best[i];
            if (flop >= 1e9) lowest[i] = std::min(lowest[i], gf / peak);
        }
        if (winograd) std::printf(" | %7.1e\n", err);
        else std::printf(" |\n");
        std::fflush(stdout);
    }
    std::printf("\nall layers above, once each (time-weighted; Winograd: the stride-1 3x3 layers only), and the lowest "
                "%%peak among layers of >= 1 GFLOP:\n");
    for (int i = 0; i < kRuns; ++i) {
        if (total[i].conv_s == 0) {  // no layer above took this path (Winograd: no stride-1 3x3 layer)
            std::printf("%-18s no layer above\n", names[i]);
            continue;
        }
        std::printf("%-18s %7.1f GFLOP in %8.1f ms = %6.1f GF/s = %3.0f%% of peak; lowest >= 1 GFLOP layer %3.0f%%\n",
                    names[i], total[i].flop * 1e-9, total[i].conv_s * 1e3, total[i].flop / total[i].conv_s * 1e-9,
                    100 * total[i].flop / total[i].conv_s * 1e-9 / peak, lowest[i] < 1e9 ? 100 * lowest[i] : 0.0);
    }
    double wall = bench::seconds_now() - t_start;
    double others = (machine_busy_s() - busy_start - (own_cpu_s() - own_start)) / wall;
    std::printf("load average at end: %s; bench took %.0f s; other processes used %.2f cores on average meanwhile\n",
                bench::load_average().c_str(), wall, std::max(0.0, others));
    return 0;
}
