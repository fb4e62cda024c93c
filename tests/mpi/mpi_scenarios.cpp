// Failure scenarios on 2 MPI ranks, each a short program run through tests/mpi/mpirun2.sh by
// tests/test_distributed.cpp, which checks how the job ends:
//   throw     rank 1 throws at step 3 of 5 all-reduces (nothing catches it): every rank must exit non-zero soon,
//             with one message naming rank 1 and the error
//   deadline  rank 1 joins the first all-reduce 20 s late; rank 0's deadline (STRATA_COLLECTIVE_TIMEOUT, set by the
//             test) expires first: a clear error naming the collective and its sequence number
//   deadline_request
//             the same with the non-blocking all-reduce: rank 0 starts it, works 0.5 s, then waits; the deadline counts
//             from the start
//   train_throw <run_dir>
//             data-parallel training of the tiny PSPNet where rank 1 throws before step 3, run as the train program
//             runs (pspnet::run_program catches the error): every rank must exit non-zero soon, naming rank 1
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "framework/check.h"
#include "framework/communicator.h"
#include "models/pspnet/cli.h"
#include "tests/models/tiny_model.h"

using namespace strata;

namespace {

int train_throw(int argc, char** argv) {
    pspnet::RunConfig c = testing::tiny_run(argc > 2 ? argv[2] : "build/test_runs/mpi_throw",
                                            {"batch_size=2", "iterations=5"});
    pspnet::TrainOptions o = testing::quiet();
    o.before_step = [](int64_t done) {
        if (done == 2 && world_communicator()->rank() == 1) STRATA_FAIL("bad data at step 3");
    };
    pspnet::train(c, o);
    std::printf("rank %d finished\n", world_communicator()->rank());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string scenario = argc > 1 ? argv[1] : "";
    // before any communicator exists: run_program may restart the process (cli.cpp)
    if (scenario == "train_throw") return pspnet::run_program(train_throw, argc, argv);
    auto comm = world_communicator();
    Tensor t = ones({4});
    if (scenario == "throw") {
        for (int step = 1; step <= 5; ++step) {
            if (step == 3 && comm->rank() == 1) throw std::runtime_error("bad data at step 3");
            all_reduce_sum(*comm, t);
        }
    } else if (scenario == "deadline") {
        if (comm->rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(20));
        all_reduce_sum(*comm, t);
    } else if (scenario == "deadline_request") {
        if (comm->rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(20));
        CollectiveRequest request = comm->all_reduce_sum_start(t.raw(), 4, CommType::F32, kCPU);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        comm->wait(request);
    } else {
        std::fprintf(stderr, "usage: mpi_scenarios throw|deadline|deadline_request|train_throw <run_dir>\n");
        return 2;
    }
    std::printf("rank %d finished\n", comm->rank());
    return 0;
}
