// The communicators without mpirun: the single-process one (what every program started without mpirun gets), the
// backend registry and the environment options; and the failure scenarios of tests/mpi/mpi_scenarios.cpp, each run
// on 2 MPI ranks, checked for how the job ends. The collectives and synchronized batch norm on 2 ranks are tested by
// build/tests/strata_mpi_tests (tests/mpi/).
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "framework/check.h"
#include "framework/communicator.h"
#include "framework/data_parallel.h"
#include "layers/batchnorm2d.h"
#include "tests/models/run_program.h"

using namespace strata;
using namespace strata::testing;

TEST_CASE("communicator: without mpirun the world is one rank and every collective is the identity") {
    REQUIRE_FALSE(launched_by_mpirun());
    auto world = world_communicator();
    CHECK(world->backend() == "single");
    CHECK(world->rank() == 0);
    CHECK(world->world_size() == 1);
    Tensor t = from_vector({1.f, 2.f}, {2});
    all_reduce_sum(*world, t);
    CHECK(t.to_vector() == std::vector<float>{1.f, 2.f});
    broadcast(*world, t, 0);
    Tensor all = all_gather(*world, t);
    CHECK(all.shape() == Shape{1, 2});
    CHECK(all.to_vector() == std::vector<float>{1.f, 2.f});
    world->barrier();
    CHECK_THROWS_WITH_AS(broadcast(*world, t, 1), doctest::Contains("the ranks are 0..0"), Error);
}

TEST_CASE("communicator: on one rank a non-blocking all_reduce is complete at once and the bucketer changes nothing") {
    auto single = make_single_process_communicator();
    Tensor t = from_vector({1.f, 2.f}, {2});
    CollectiveRequest request = single->all_reduce_sum_start(t.raw(), 2, CommType::F32, kCPU);
    CHECK_FALSE(request.pending());
    CHECK(single->test(request));
    single->wait(request);
    CHECK(t.to_vector() == std::vector<float>{1.f, 2.f});
    CHECK(single->collectives_called() == 1);

    Tensor p = from_vector({3.f}, {1}).requires_grad_();
    Tensor q = from_vector({4.f}, {1}).requires_grad_();
    GradientBucketer buckets(*single, {p, q}, 4);
    p.backward(from_vector({5.f}, {1}));
    buckets.finish();
    CHECK(p.grad().to_vector() == std::vector<float>{5.f});
    CHECK_FALSE(q.grad().defined());
    CHECK(buckets.num_buckets() == 0);
    CHECK(single->collectives_called() == 1);
    CHECK_THROWS_WITH_AS(buckets.finish(), doctest::Contains("finish() called twice"), Error);
}

TEST_CASE("communicator: synchronized batch norm over one rank is plain batch norm") {
    auto single = make_single_process_communicator();
    Tensor x = from_vector({2, 6, 1, -1, 2, 6, 1, -1}, {2, 2, 1, 2});
    Tensor rm1 = zeros({2}), rv1 = ones({2}), rm2 = zeros({2}), rv2 = ones({2});
    Tensor plain = batchnorm2d(x, Tensor(), Tensor(), rm1, rv1, true, 0.1f, 1e-5f);
    Tensor synced = batchnorm2d(x, Tensor(), Tensor(), rm2, rv2, true, 0.1f, 1e-5f, single.get());
    CHECK(plain.to_vector() == synced.to_vector());
    CHECK(rv1.to_vector() == rv2.to_vector());
    CHECK(single->collectives_called() == 0);
}

TEST_CASE("communicator: the registry names what it has; the options come from the environment") {
    CHECK(has_communicator_backend("mpi"));
    CHECK_THROWS_WITH_AS(make_communicator("carrier-pigeon", {}), doctest::Contains("registered: "), Error);
    setenv("STRATA_COLLECTIVE_TIMEOUT", "2.5", 1);
    setenv("STRATA_COLLECTIVE_DEBUG", "1", 1);
    Communicator::Options options = communicator_options_from_env();
    CHECK(options.timeout_seconds == 2.5);
    CHECK(options.check_order);
    setenv("STRATA_COLLECTIVE_TIMEOUT", "soon", 1);
    CHECK_THROWS_WITH_AS(communicator_options_from_env(), doctest::Contains("STRATA_COLLECTIVE_TIMEOUT must be"),
                         Error);
    unsetenv("STRATA_COLLECTIVE_TIMEOUT");
    unsetenv("STRATA_COLLECTIVE_DEBUG");
}

// The scenarios run under `timeout 30`: exit code 124 means the job hung past 30 s.
TEST_CASE("communicator: data-parallel training picks NCCL for GPU tensors on several ranks, else MPI") {
    const Device cpu = kCPU, gpu{DeviceType::CUDA, 0};
    // one rank: no collective, whatever the setting
    CHECK(choose_data_parallel_backend("auto", gpu, 1, true) == "single");
    CHECK(choose_data_parallel_backend("nccl", cpu, 1, false) == "single");
    // auto: NCCL for a GPU when the build has it, else MPI
    CHECK(choose_data_parallel_backend("auto", gpu, 2, true) == "nccl");
    CHECK(choose_data_parallel_backend("auto", gpu, 2, false) == "mpi");
    CHECK(choose_data_parallel_backend("auto", cpu, 2, true) == "mpi");
    CHECK(choose_data_parallel_backend("mpi", gpu, 4, true) == "mpi");
    CHECK(choose_data_parallel_backend("nccl", gpu, 2, true) == "nccl");
    // nccl where it cannot work: the error names the fix
    CHECK_THROWS_WITH_AS(choose_data_parallel_backend("nccl", gpu, 2, false),
                         doctest::Contains("this build has no NCCL backend (it comes with the CUDA build: make CUDA=1"),
                         Error);
    CHECK_THROWS_WITH_AS(choose_data_parallel_backend("nccl", cpu, 2, true),
                         doctest::Contains("the device is cpu: set device=cuda"), Error);
    CHECK_THROWS_WITH_AS(choose_data_parallel_backend("gloo", cpu, 2, true),
                         doctest::Contains("communicator=gloo is not one of auto, mpi, nccl"), Error);
    // the single-process world keeps itself and its device
    auto single = make_single_process_communicator();
    CHECK(data_parallel_communicator("nccl", gpu, single) == single);
    CHECK(data_parallel_device(gpu, *single) == gpu);
    CHECK(data_parallel_device(cpu, *single) == cpu);
}

TEST_CASE("communicator: the local rank comes from the launcher, else it is the rank") {
    const char* names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    std::vector<std::pair<std::string, std::string>> saved;  // restored at the end
    for (const char* name : names) {
        if (const char* v = std::getenv(name)) saved.emplace_back(name, v);
        unsetenv(name);
    }
    CHECK(local_rank(5) == 5);
    setenv("SLURM_LOCALID", "2", 1);
    CHECK(local_rank(5) == 2);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);  // Open MPI's mpirun: first
    CHECK(local_rank(5) == 1);
    for (const char* name : names) unsetenv(name);
    for (const auto& [name, value] : saved) setenv(name.c_str(), value.c_str(), 1);
}

TEST_CASE("communicator: a rank that throws ends every rank non-zero within 30 s, naming the rank and the error") {
    ProgramResult r = run_program("MPI_TEST_TIMEOUT=30 tests/mpi/mpirun2.sh build/tests/mpi_scenarios throw");
    CAPTURE(r.output);
    CHECK(r.code != 0);
    CHECK(r.code != 124);
    CHECK(r.output.find("strata: rank 1 of 2 failed: bad data at step 3") != std::string::npos);
    CHECK(r.output.find("rank 0 finished") == std::string::npos);
}

TEST_CASE("train: a rank that throws at step 3 ends both ranks non-zero within 30 s, naming rank 1 and its error") {
    ProgramResult r = run_program(
        "MPI_TEST_TIMEOUT=30 tests/mpi/mpirun2.sh build/tests/mpi_scenarios train_throw build/test_runs/mpi_throw");
    CAPTURE(r.output);
    CHECK(r.code != 0);
    CHECK(r.code != 124);
    CHECK(r.output.find("strata: rank 1 of 2 failed: bad data at step 3") != std::string::npos);
    CHECK(r.output.find("finished") == std::string::npos);
}

TEST_CASE("communicator: a collective past its deadline is a clear error naming it") {
    ProgramResult r = run_program(
        "STRATA_COLLECTIVE_TIMEOUT=1 MPI_TEST_TIMEOUT=30 tests/mpi/mpirun2.sh -x STRATA_COLLECTIVE_TIMEOUT "
        "build/tests/mpi_scenarios deadline");
    CAPTURE(r.output);
    CHECK(r.code != 0);
    CHECK(r.code != 124);
    CHECK(r.output.find("strata: rank 0 of 2 failed: communicator mpi: rank 0: all_reduce #1 (4 F32 values) did not "
                        "complete within 1 s") != std::string::npos);
}

TEST_CASE("communicator: a non-blocking collective waited past its deadline is the same clear error") {
    ProgramResult r = run_program(
        "STRATA_COLLECTIVE_TIMEOUT=1 MPI_TEST_TIMEOUT=30 tests/mpi/mpirun2.sh -x STRATA_COLLECTIVE_TIMEOUT "
        "build/tests/mpi_scenarios deadline_request");
    CAPTURE(r.output);
    CHECK(r.code != 0);
    CHECK(r.code != 124);
    CHECK(r.output.find("strata: rank 0 of 2 failed: communicator mpi: rank 0: all_reduce #1 (4 F32 values) did not "
                        "complete within 1 s") != std::string::npos);
}
