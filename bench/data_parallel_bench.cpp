// Data-parallel training on this machine: images/s of 1 rank x 2 threads against 2 ranks x 1 thread (MPI over
// shared memory), the same global batch, and the time per step each rank spends inside collectives.
//
//     build/bench/data_parallel_bench [--quick]
//
// Started without mpirun it measures 1 rank (the threads of STRATA_NUM_THREADS, all cores by default) in this
// process, then starts itself on 2 ranks of 1 thread through mpirun (the flags of tests/mpi/mpirun2.sh) and prints
// their figures. A step is the trainer's: forward with the aux head, CE + 0.4 CE_aux, backward, the gradients
// averaged over the ranks in 25 MiB buckets, SGD; on 2 ranks every batch norm is synchronized and each rank has
// half of the global batch. The 2 ranks run each case three times: "after", the gradients averaged after the
// backward (average_gradients: every all-reduce exposed), and "overlap 25M" / "overlap 4M", as the trainer does it
// (GradientBucketer with buckets of 25 MiB, the trainer's, or 4 MiB: each bucket's all-reduce launched during the
// backward when its gradients are final; finish() after the backward waits for what is left). psp18w32's 17 MB of
// gradients are one 25 MiB bucket, final only at the end of the backward, so there only the packing moves into the
// backward; 4 MiB buckets let the all-reduces overlap. Per step, on rank 0: "collectives in fwd/bwd" is the time
// inside the communicator during forward and backward (synchronized batch norm's exchanges and waiting there for
// the other rank, plus starting and testing the buckets when overlapped); "waiting" is a barrier after the backward
// (how much later the other rank finished it); "grad averaging" is the gradient averaging that is left after that
// barrier: average_gradients itself (all-reduces and packing through host memory), or finish() (the communication
// not hidden by the backward, and unpacking). "after" minus "overlap" in that column is the communication the
// overlap hid. Each figure is the median of the timed steps after one warm-up step; the ranks start each step
// together (a barrier, not counted). OpenMP waits passively, as in the programs. --quick runs the small model only.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/machine.h"
#include "framework/check.h"
#include "framework/communicator.h"
#include "framework/data_parallel.h"
#include "framework/optimizer.h"
#include "framework/parallel.h"
#include "framework/random.h"
#include "layers/add.h"
#include "layers/batchnorm2d.h"
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
    int64_t global_batch, size;
    int steps;
};

struct Timing {
    double step = 0, bn = 0, waiting = 0, gradients = 0;  // seconds per step (medians)
};

// bucket_mib 0: average_gradients after the backward; else a GradientBucketer of buckets of that size.
Timing run(const Case& c, const std::shared_ptr<Communicator>& comm, int64_t bucket_mib) {
    const bool overlap = bucket_mib > 0;
    const int world = comm->world_size();
    const int64_t batch = c.global_batch / world;
    manual_seed(0);
    PSPNetConfig mc;
    mc.backbone.depth = c.depth;
    mc.backbone.width = c.width;
    mc.classes = 21;
    PSPNet model(mc);
    if (world > 1) use_sync_batchnorm(model, comm);
    broadcast_state(*comm, model);
    manual_seed(uint64_t(1 + comm->rank()));  // each rank its own images
    Tensor x = randn({batch, 3, c.size, c.size});
    std::vector<int32_t> lab(size_t(batch * c.size * c.size));
    Generator g(uint64_t(1 + comm->rank()));
    for (auto& v : lab) v = int32_t(g.randint(21));
    Tensor labels = from_vector_i32(lab, {batch, c.size, c.size});
    SGD opt({ParamGroup{"all", model.parameters()}}, SGDOptions{0.01f, 0.9f, 1e-4f});
    model.train();
    std::vector<double> steps, bn, waiting, gradients;
    for (int s = 0; s <= c.steps; ++s) {
        comm->barrier();  // every rank starts the step together
        double t0 = bench::seconds_now(), c0 = comm->seconds_in_collectives();
        PSPNetOutput out = model.forward_all(x);
        Tensor loss = cross_entropy(out.logits, labels) + cross_entropy(out.aux_logits, labels) * 0.4f;
        opt.zero_grad();
        std::unique_ptr<GradientBucketer> buckets;
        if (overlap) buckets = std::make_unique<GradientBucketer>(*comm, model.parameters(), bucket_mib << 20);
        loss.backward();
        double c1 = comm->seconds_in_collectives(), w0 = bench::seconds_now();
        comm->barrier();
        double g0 = bench::seconds_now();
        if (overlap) buckets->finish();
        else average_gradients(*comm, model.parameters());
        double g1 = bench::seconds_now();
        opt.step();
        if (s == 0) continue;  // the warm-up step: the allocator's cache and OpenBLAS
        steps.push_back(bench::seconds_now() - t0);
        bn.push_back(c1 - c0);
        waiting.push_back(g0 - w0);
        gradients.push_back(g1 - g0);
    }
    return {bench::median(steps), bench::median(bn), bench::median(waiting), bench::median(gradients)};
}

std::vector<Case> cases(bool quick) {
    std::vector<Case> all = {{"psp18w32 train 8x97", 18, 0.5, 8, 97, 10}, {"psp50    train 2x225", 50, 1.0, 2, 225, 3}};
    if (quick) all.resize(1);
    return all;
}

void print_header() {
    std::printf("%-22s %-18s %8s %9s %23s %9s %15s\n", "case", "ranks x thr", "s/step", "images/s",
                "collectives in fwd/bwd", "waiting", "grad averaging");
}

void print_row(const Case& c, int ranks, int threads, const char* mode, const Timing& t) {
    std::printf("%-22s %-18s %8.3f %9.2f %21.3f s %7.3f s %13.3f s\n", c.name,
                (std::to_string(ranks) + " x " + std::to_string(threads) + " " + mode).c_str(), t.step,
                double(c.global_batch) / t.step, t.bn, t.waiting, t.gradients);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    // As the programs do (models/pspnet/cli.cpp): OpenMP threads that sleep while they wait, so that on a busy
    // machine the 2-thread rank is not slowed 10x by a spinning partner (docs/PERFORMANCE.md). The ranks inherit it.
    if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
    }
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    std::shared_ptr<Communicator> comm = world_communicator();
    if (comm->world_size() > 1) {  // started by the run below: each case on every rank, rank 0 reports
        for (const Case& c : cases(quick)) {
            for (int64_t bucket_mib : {0, 25, 4}) {
                Timing t = run(c, comm, bucket_mib);
                std::string mode = bucket_mib == 0 ? "after" : str("overlap ", bucket_mib, "M");
                if (comm->rank() == 0) print_row(c, comm->world_size(), num_threads(), mode.c_str(), t);
            }
        }
        return 0;
    }
    std::printf("data-parallel training: the same global batch on 1 rank x %d threads and on 2 ranks x 1 thread\n",
                num_threads());
    bench::print_machine(num_threads());
    print_header();
    for (const Case& c : cases(quick)) print_row(c, 1, num_threads(), "", run(c, comm, 0));
    // 2 ranks of 1 thread: this program again, under mpirun
    std::string command = "mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 --mca btl self,vader "
                          "--mca btl_vader_single_copy_mechanism none -x STRATA_NUM_THREADS=1 -x OMP_NUM_THREADS=1 " +
                          std::filesystem::read_symlink("/proc/self/exe").string();
    if (quick) command += " --quick";
    std::fflush(stdout);
    int rc = std::system(command.c_str());
    if (rc != 0) std::printf("the 2-rank run failed (mpirun exit status %d): is Open MPI installed (make deps)?\n", rc);
    return rc == 0 ? 0 : 1;
}
