// Synchronized batch norm on 2 ranks (run by tests/mpi/mpirun2.sh) against plain batch norm on the combined batch
// in one process: outputs, input gradients, gamma/beta gradients (summed over the ranks) and running statistics,
// for the batch split 2+2, 3+1 and 4+0, and the same for the fused batchnorm2d_relu with a residual; bitwise
// reproducibility; the global "more than one value" check; eval mode and the module switch.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "framework/check.h"
#include "framework/communicator.h"
#include "framework/random.h"
#include "layers/batchnorm2d.h"

using namespace strata;

namespace {

Communicator& comm() {
    static std::shared_ptr<Communicator> world = world_communicator();
    return *world;
}

// The same values on every rank: normal(offset, scale^2) from a fixed seed. A large offset makes a variance computed
// as E[x^2] - E[x]^2 visibly wrong.
Tensor fixed_randn(const Shape& shape, uint64_t seed, float scale, float offset) {
    Generator gen(seed);
    std::vector<float> v = randn(shape, gen).to_vector();
    for (float& e : v) e = e * scale + offset;
    return from_vector(v, shape);
}

struct BnRun {
    Tensor y, dx, dweight, dbias, running_mean, running_var, dresidual;
};

// batchnorm2d on the images [start, start + count) of the global x, backward with the same images of dy. With
// residual_all defined: the fused batchnorm2d_relu with those images of the residual (which gets a gradient too).
BnRun run_bn(const Tensor& x_all, const Tensor& dy_all, int64_t start, int64_t count, Communicator* sync,
             const Tensor& residual_all = Tensor()) {
    const int64_t C = x_all.size(1);
    Tensor x = x_all.narrow(0, start, count).clone().requires_grad_();
    Tensor weight = from_vector({1.5f, -0.5f, 2.f}, {C}).requires_grad_();
    Tensor bias = from_vector({0.1f, 0.2f, -0.3f}, {C}).requires_grad_();
    Tensor running_mean = from_vector({0.5f, -1.f, 0.f}, {C}), running_var = from_vector({1.f, 2.f, 0.5f}, {C});
    Tensor residual;
    if (residual_all.defined()) residual = residual_all.narrow(0, start, count).clone().requires_grad_();
    Tensor y = residual.defined()
                   ? batchnorm2d_relu(x, weight, bias, running_mean, running_var, true, 0.1f, 1e-5f, residual, sync)
                   : batchnorm2d(x, weight, bias, running_mean, running_var, true, 0.1f, 1e-5f, sync);
    y.backward(dy_all.narrow(0, start, count).clone());
    return {y, x.grad(), weight.grad(), bias.grad(), running_mean, running_var,
            residual.defined() ? residual.grad() : Tensor()};
}

void check_close(const Tensor& got, const Tensor& expected, float tolerance) {
    REQUIRE(got.shape() == expected.shape());
    std::vector<float> g = got.to_vector(), e = expected.to_vector();
    for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == doctest::Approx(e[i]).epsilon(tolerance).scale(1.0));
}

void check_same_bits(const Tensor& a, const Tensor& b) {
    std::vector<float> va = a.to_vector(), vb = b.to_vector();
    REQUIRE(va.size() == vb.size());
    CHECK(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0);
}

// This rank's share [start, start + count) of the combined batch's run `ref`: outputs, input gradients and
// running statistics; gamma/beta gradients are each rank's own sum, and over the ranks the combined batch's.
void check_matches_combined(const BnRun& run, const BnRun& ref, int64_t start, int64_t count) {
    check_close(run.y, ref.y.narrow(0, start, count), 1e-5f);
    check_close(run.dx, ref.dx.narrow(0, start, count), 1e-4f);
    check_close(run.running_mean, ref.running_mean, 1e-6f);
    check_close(run.running_var, ref.running_var, 1e-5f);
    Tensor dweight = run.dweight.clone(), dbias = run.dbias.clone();
    all_reduce_sum(comm(), dweight);
    all_reduce_sum(comm(), dbias);
    check_close(dweight, ref.dweight, 1e-4f);
    check_close(dbias, ref.dbias, 1e-4f);
}

}  // namespace

TEST_CASE("sync batchnorm2d: 2 ranks equal plain batchnorm2d on the combined batch (splits 2+2, 3+1, 4+0)") {
    REQUIRE(comm().world_size() == 2);
    const int r = comm().rank();
    Tensor x = fixed_randn({4, 3, 3, 5}, 7, 2.f, 100.f);
    Tensor dy = fixed_randn({4, 3, 3, 5}, 8, 1.f, 0.3f);
    BnRun ref = run_bn(x, dy, 0, 4, nullptr);
    for (int64_t first : {2, 3, 4}) {
        CAPTURE(first);
        const int64_t start = r == 0 ? 0 : first, count = r == 0 ? first : 4 - first;
        check_matches_combined(run_bn(x, dy, start, count, &comm()), ref, start, count);
    }
}

TEST_CASE("sync batchnorm2d_relu: fused with a residual, 2 ranks equal the fused op on the combined batch") {
    REQUIRE(comm().world_size() == 2);
    const int r = comm().rank();
    Tensor x = fixed_randn({4, 3, 3, 5}, 7, 2.f, 100.f);
    Tensor dy = fixed_randn({4, 3, 3, 5}, 8, 1.f, 0.3f);
    Tensor residual = fixed_randn({4, 3, 3, 5}, 9, 1.f, 0.f);  // about half the outputs end up clipped to 0
    BnRun ref = run_bn(x, dy, 0, 4, nullptr, residual);
    for (int64_t first : {2, 3}) {
        CAPTURE(first);
        const int64_t start = r == 0 ? 0 : first, count = r == 0 ? first : 4 - first;
        BnRun run = run_bn(x, dy, start, count, &comm(), residual);
        check_matches_combined(run, ref, start, count);
        check_close(run.dresidual, ref.dresidual.narrow(0, start, count), 1e-6f);
    }
}

TEST_CASE("sync batchnorm2d: two runs give the same bits, on both ranks") {
    const int r = comm().rank();
    Tensor x = fixed_randn({3, 3, 2, 7}, 11, 3.f, -20.f);
    Tensor dy = fixed_randn({3, 3, 2, 7}, 12, 1.f, 0.f);
    const int64_t start = r == 0 ? 0 : 2, count = r == 0 ? 2 : 1;
    BnRun a = run_bn(x, dy, start, count, &comm());
    BnRun b = run_bn(x, dy, start, count, &comm());
    for (auto [ta, tb] : {std::pair{a.y, b.y}, {a.dx, b.dx}, {a.dweight, b.dweight}, {a.running_mean, b.running_mean},
                          {a.running_var, b.running_var}})
        check_same_bits(ta, tb);
    // the running statistics are the same bits on every rank
    Tensor both = all_gather(comm(), a.running_var);
    check_same_bits(both.narrow(0, 0, 1), both.narrow(0, 1, 1));
}

TEST_CASE("sync batchnorm2d: one value per rank trains (the check counts the combined batch); one in all is an error") {
    const int r = comm().rank();
    // PSPNet's bin-1 branch with one image per rank: (1, C, 1, 1) each, M = 2 over the ranks
    Tensor x = from_vector({r == 0 ? 1.f : 3.f, r == 0 ? 5.f : 7.f, float(r)}, {1, 3, 1, 1});
    Tensor y = batchnorm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 0.f, &comm());
    const float expected = r == 0 ? -1.f : 1.f;  // every channel: two values 2 apart, xhat = -1 and 1
    CHECK(y.to_vector() == std::vector<float>{expected, expected, expected});
    // one value over both ranks (rank 1 empty): every rank fails the same way, so none is left waiting
    Tensor one = r == 0 ? zeros({1, 3, 1, 1}) : zeros({0, 3, 1, 1});
    CHECK_THROWS_WITH_AS(batchnorm2d(one, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 0.f, &comm()),
                         doctest::Contains("got 1 over the 2 ranks"), Error);
}

TEST_CASE("sync batchnorm2d: the module switch; eval mode calls no collective") {
    BatchNorm2d bn(3);
    CHECK(use_sync_batchnorm(bn, world_communicator()) == 1);
    Tensor x = fixed_randn({2, 3, 2, 2}, 21 + comm().rank(), 1.f, 0.f);
    int64_t before = comm().collectives_called();
    bn.forward(x);
    CHECK(comm().collectives_called() == before + 1);  // the all_gather of the statistics
    CHECK(bn.num_batches_tracked.to_vector_i64() == std::vector<int64_t>{1});
    Tensor both = all_gather(comm(), bn.running_mean);  // the same on both ranks
    check_same_bits(both.narrow(0, 0, 1), both.narrow(0, 1, 1));
    bn.eval();
    before = comm().collectives_called();
    bn.forward(x);
    CHECK(comm().collectives_called() == before);
    CHECK(use_sync_batchnorm(bn, nullptr) == 1);
    bn.train();
    bn.forward(x);
    CHECK(comm().collectives_called() == before);
}
