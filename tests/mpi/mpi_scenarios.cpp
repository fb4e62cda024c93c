// Failure scenarios on 2 MPI ranks, each a short program run through tests/mpi/mpirun2.sh by
// tests/test_distributed.cpp, which checks how the job ends:
//   throw     rank 1 throws at step 3 of 5 all-reduces (nothing catches it): every rank must exit non-zero soon,
//             with one message naming rank 1 and the error
//   deadline  rank 1 joins the first all-reduce 20 s late; rank 0's deadline (STRATA_COLLECTIVE_TIMEOUT, set by the
//             test) expires first: a clear error naming the collective and its sequence number
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "framework/communicator.h"

using namespace strata;

int main(int argc, char** argv) {
    std::string scenario = argc > 1 ? argv[1] : "";
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
    } else {
        std::fprintf(stderr, "usage: mpi_scenarios throw|deadline\n");
        return 2;
    }
    std::printf("rank %d finished\n", comm->rank());
    return 0;
}
