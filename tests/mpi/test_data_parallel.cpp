// The data-parallel helpers (framework/data_parallel.h) on 2 ranks: the same-model check and its error, the
// broadcast of rank 0's state, and gradient averaging in buckets, with a gradient missing on one rank.
#include <doctest/doctest.h>

#include <vector>

#include "framework/check.h"
#include "framework/data_parallel.h"
#include "layers/batchnorm2d.h"

using namespace strata;

namespace {

Communicator& comm() {
    static std::shared_ptr<Communicator> world = world_communicator();
    return *world;
}

}  // namespace

TEST_CASE("data parallel: the same model passes; a different one is an error on every rank naming the difference") {
    BatchNorm2d same(4);
    check_same_model(comm(), same);
    BatchNorm2d other(comm().rank() == 0 ? 4 : 5);
    if (comm().rank() == 1)
        CHECK_THROWS_WITH_AS(check_same_model(comm(), other),
                             doctest::Contains("rank 1's model differs from rank 0's: rank 0 has weight [4] F32, "
                                               "rank 1 has weight [5] F32"),
                             Error);
    else
        CHECK_THROWS_WITH_AS(check_same_model(comm(), other),
                             doctest::Contains("rank 1's model differs from rank 0's (rank 1's error"), Error);
}

TEST_CASE("data parallel: broadcast_state gives every rank rank 0's parameters and buffers") {
    BatchNorm2d bn(3);
    const float r = float(comm().rank());
    bn.weight.copy_(from_vector({r, r + 1, r + 2}, {3}));
    bn.running_var.copy_(from_vector({10 + r, 11 + r, 12 + r}, {3}));
    bn.num_batches_tracked.copy_(from_vector_i64({7 + comm().rank()}, {}));
    broadcast_state(comm(), bn);
    CHECK(bn.weight.to_vector() == std::vector<float>{0, 1, 2});
    CHECK(bn.running_var.to_vector() == std::vector<float>{10, 11, 12});
    CHECK(bn.num_batches_tracked.to_vector_i64() == std::vector<int64_t>{7});
}

TEST_CASE("data parallel: average_gradients means the gradients over the ranks, in buckets") {
    const float r = float(comm().rank());
    std::vector<Tensor> params = {zeros({3}).requires_grad_(), zeros({2, 2}).requires_grad_(),
                                  zeros({1}).requires_grad_(), zeros({2}).requires_grad_()};
    params[0].set_grad(from_vector({r, 2 * r, 4.f}, {3}));
    params[1].set_grad(from_vector({1 + r, 1 - r, 3 * r, 0.5f}, {2, 2}));
    if (comm().rank() == 1) params[2].set_grad(from_vector({6.f}, {1}));  // only rank 1 has this one
    // params[3]: no rank has a gradient
    for (int64_t bucket_bytes : {int64_t(8), int64_t(1) << 20}) {  // one parameter per bucket; all in one
        CAPTURE(bucket_bytes);
        std::vector<Tensor> copy;
        for (const Tensor& p : params) {
            Tensor q = zeros(p.shape()).requires_grad_();
            if (p.grad().defined()) q.set_grad(p.grad().clone());
            copy.push_back(q);
        }
        average_gradients(comm(), copy, bucket_bytes);
        CHECK(copy[0].grad().to_vector() == std::vector<float>{0.5f, 1.f, 4.f});
        CHECK(copy[1].grad().to_vector() == std::vector<float>{1.5f, 0.5f, 1.5f, 0.5f});
        REQUIRE(copy[2].grad().defined());
        CHECK(copy[2].grad().to_vector() == std::vector<float>{3.f});
        CHECK_FALSE(copy[3].grad().defined());
    }
}
