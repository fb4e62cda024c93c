// The "mpi" communicator on 2 ranks (run by tests/mpi/mpirun2.sh): every collective against the values it must
// give, on raw buffers and on tensors of each element type, and the debug mode's order check.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "framework/check.h"
#include "framework/communicator.h"

using namespace strata;

namespace {

Communicator& comm() {
    static std::shared_ptr<Communicator> world = world_communicator();
    return *world;
}

}  // namespace

TEST_CASE("mpi communicator: launched by mpirun, two ranks") {
    CHECK(launched_by_mpirun());
    CHECK(comm().backend() == "mpi");
    REQUIRE(comm().world_size() == 2);
    CHECK((comm().rank() == 0 || comm().rank() == 1));
}

TEST_CASE("mpi communicator: all_reduce sums F32, I64 and F64 in place") {
    const int r = comm().rank();
    Tensor f = from_vector({1.5f + r, -2.f * (r + 1), 1e-3f}, {3});
    all_reduce_sum(comm(), f);
    CHECK(f.to_vector() == std::vector<float>{4.f, -6.f, 2e-3f});

    Tensor i = from_vector_i64({int64_t(1) << 40, r, -7}, {3});
    all_reduce_sum(comm(), i);
    CHECK(i.to_vector_i64() == std::vector<int64_t>{int64_t(1) << 41, 1, -14});

    // doubles in an I64 tensor: 0.1 + 0.2 in double, not float
    Tensor d = empty({1}, DType::I64);
    double value = r == 0 ? 0.1 : 0.2;
    std::memcpy(d.i64(), &value, sizeof value);
    all_reduce_sum(comm(), d, CommType::F64);
    double sum;
    std::memcpy(&sum, d.i64(), sizeof sum);
    CHECK(sum == 0.1 + 0.2);
}

TEST_CASE("mpi communicator: all_gather stacks the ranks' tensors in rank order") {
    const int r = comm().rank();
    Tensor t = from_vector({float(r), float(10 + r), float(20 + r), float(30 + r)}, {2, 2});
    Tensor all = all_gather(comm(), t);
    CHECK(all.shape() == Shape{2, 2, 2});
    CHECK(all.to_vector() == std::vector<float>{0, 10, 20, 30, 1, 11, 21, 31});
    Tensor ids = all_gather(comm(), from_vector_i64({r * 5}, {1}));
    CHECK(ids.to_vector_i64() == std::vector<int64_t>{0, 5});
}

TEST_CASE("mpi communicator: broadcast copies the root's tensor to every rank") {
    const int r = comm().rank();
    for (int root : {0, 1}) {
        Tensor t = from_vector({float(r), float(r) + 0.5f}, {2});
        broadcast(comm(), t, root);
        CHECK(t.to_vector() == std::vector<float>{float(root), float(root) + 0.5f});
    }
    CHECK_THROWS_WITH_AS(broadcast(comm(), zeros({1}), 2), doctest::Contains("root rank 2"), Error);
}

TEST_CASE("mpi communicator: barrier and empty collectives complete and are numbered") {
    int64_t before = comm().collectives_called();
    comm().barrier();
    Tensor empty_tensor = zeros({0});
    all_reduce_sum(comm(), empty_tensor);
    CHECK(all_gather(comm(), empty_tensor).shape() == Shape{2, 0});
    CHECK(comm().collectives_called() == before + 3);
}

TEST_CASE("mpi communicator: the debug mode passes matching calls and names a rank that calls another collective") {
    comm().set_check_order(true);
    Tensor t = from_vector({1.f}, {1});
    all_reduce_sum(comm(), t);
    CHECK(t.item() == 2.f);
    // rank 0 all-reduces 3 values while rank 1 broadcasts 3: both see the difference in the exchange before the
    // collective, so neither waits for the other
    Tensor three = zeros({3});
    auto mismatched = [&] {
        if (comm().rank() == 0) all_reduce_sum(comm(), three);
        else broadcast(comm(), three, 0);
    };
    CHECK_THROWS_WITH_AS(mismatched(), doctest::Contains("different order: rank 0 calls all_reduce #"), Error);
    comm().set_check_order(false);
    comm().barrier();  // the ranks are in step again
}

TEST_CASE("mpi communicator: bad arguments are errors, before any rank waits") {
    Tensor f = zeros({2});
    CHECK_THROWS_WITH_AS(all_reduce_sum(comm(), f, CommType::F64), doctest::Contains("F32 travels in F32 tensors"),
                         Error);
    CHECK_THROWS_WITH_AS(all_reduce_sum(comm(), zeros({2, 2}).transpose(0, 1)), doctest::Contains("contiguous"),
                         Error);
    CHECK_THROWS_WITH_AS(comm().set_timeout(0), doctest::Contains("timeout must be > 0"), Error);
}
