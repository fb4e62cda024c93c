// The data-parallel helpers (framework/data_parallel.h) on 2 ranks: the same-model check and its error, the
// broadcast of rank 0's state, gradient averaging in buckets, with a gradient missing on one rank, and the buckets
// launched during the backward (GradientBucketer) among synchronized batch norm's own collectives.
#include <doctest/doctest.h>

#include <vector>

#include "framework/check.h"
#include "framework/data_parallel.h"
#include "layers/batchnorm2d.h"
#include "layers/linear.h"
#include "layers/relu.h"
#include "layers/sum.h"

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

namespace {

// A small network whose backward runs collectives of its own (synchronized batch norm) between the bucket
// launches: loss = sum(linear(relu(linear(sync_bn(relu(linear(x, w1, b1))), w2, b2)), w3, b3)) on this rank's two
// samples. Parameter 4 (`unused`) gets no gradient on any rank.
struct Net {
    std::vector<Tensor> params;
    Tensor running_mean = zeros({4}), running_var = ones({4});
    Net() {
        auto param = [&](Shape shape, float scale) {
            std::vector<float> v(size_t(shape_numel(shape)));
            for (size_t i = 0; i < v.size(); ++i) v[i] = scale * float((i * 7 + 3) % 11) / 11.f - 0.3f;
            params.push_back(from_vector(v, shape).requires_grad_());
        };
        param({4, 3}, 1.f);  // w1
        param({4}, 0.5f);    // b1
        param({4}, 2.f);     // gamma
        param({4}, 0.3f);    // beta
        param({5}, 1.f);     // unused
        param({4, 4}, 1.f);  // w2
        param({4}, 0.2f);    // b2
        param({2, 4}, 1.f);  // w3
        param({2}, 0.1f);    // b3
    }
    Tensor loss(Communicator& comm) const {
        const float r = float(comm.rank());
        Tensor x = from_vector({1 + r, -2, 0.5f, 3 - r, 1, -1 + r}, {2, 3});
        Tensor h = relu(linear(x, params[0], params[1])).reshape({2, 4, 1, 1});
        h = batchnorm2d(h, params[2], params[3], running_mean, running_var, true, 0.1f, 1e-5f, &comm);
        h = relu(linear(h.reshape({2, 4}), params[5], params[6]));
        return sum(linear(h, params[7], params[8]));
    }
    void clear() {
        for (Tensor& p : params) p.set_grad(Tensor());
    }
};

}  // namespace

TEST_CASE("data parallel: buckets launched during the backward give the plain average, in the same order on every "
          "rank") {
    comm().set_check_order(true);  // every collective, bucket launches included, checked against rank 0's
    Net net;
    net.loss(comm()).backward();
    std::vector<Tensor> expected;
    for (const Tensor& p : net.params) {
        Tensor q = zeros(p.shape()).requires_grad_();
        if (p.grad().defined()) q.set_grad(p.grad().clone());
        expected.push_back(q);
    }
    average_gradients(comm(), expected);
    const int n = int(net.params.size());
    // one bucket per parameter; a few parameters per bucket; one bucket for all
    for (int64_t bucket_bytes : {int64_t(4), int64_t(64), int64_t(1) << 20}) {
        CAPTURE(bucket_bytes);
        net.clear();
        GradientBucketer buckets(comm(), net.params, bucket_bytes);
        net.loss(comm()).backward();
        buckets.finish();
        for (int i = 0; i < n; ++i) {
            CAPTURE(i);
            REQUIRE(net.params[size_t(i)].grad().defined() == expected[size_t(i)].grad().defined());
            if (expected[size_t(i)].grad().defined())
                CHECK(net.params[size_t(i)].grad().to_vector() == expected[size_t(i)].grad().to_vector());
        }
        CHECK(buckets.ready_at_launch().size() == size_t(buckets.num_buckets()));
        // the buckets in launch order hold the parameters from the last to the first
        std::vector<int> order;
        for (const auto& b : buckets.bucket_parameters()) order.insert(order.end(), b.begin(), b.end());
        CHECK(order == std::vector<int>{8, 7, 6, 5, 4, 3, 2, 1, 0});
        // every rank launched its buckets at the same points (the order check above would have failed otherwise)
        std::vector<int64_t> mine(buckets.ready_at_launch().begin(), buckets.ready_at_launch().end());
        std::vector<int64_t> all = all_gather(comm(), from_vector_i64(mine, {int64_t(mine.size())})).to_vector_i64();
        CHECK(std::vector<int64_t>(all.begin(), all.begin() + int64_t(mine.size())) ==
              std::vector<int64_t>(all.begin() + int64_t(mine.size()), all.end()));
    }
    comm().set_check_order(false);
}

TEST_CASE("data parallel: the first bucket's all-reduce starts before the backward has finished") {
    Net net;
    GradientBucketer buckets(comm(), net.params, 4);  // one bucket per parameter
    net.loss(comm()).backward();
    // b3 is final after the last linear's backward: its bucket is launched when 2 of the 8 parameters the backward
    // reaches are final (b3 and w3 arrive together), long before the end of the backward; the buckets after the
    // unused parameter (index 4) wait for finish()
    REQUIRE(buckets.ready_at_launch().size() == 4);
    CHECK(buckets.ready_at_launch()[0] == 2);
    CHECK(buckets.ready_at_launch()[3] == 4);
    CHECK(buckets.launched_in_backward() == 4);
    buckets.finish();
    CHECK(buckets.ready_at_launch().size() == 9);
    CHECK(buckets.launched_in_backward() == 4);
}

TEST_CASE("communicator: a non-blocking all_reduce completes while other collectives run") {
    const float r = float(comm().rank());
    Tensor a = from_vector({1 + r, 2 * r}, {2});
    CollectiveRequest request = comm().all_reduce_sum_start(a.raw(), 2, CommType::F32, kCPU);
    CHECK(request.op.find("all_reduce #") == 0);
    Tensor b = from_vector({r}, {1});
    all_reduce_sum(comm(), b);  // a blocking one in between
    comm().wait(request);
    CHECK_FALSE(request.pending());
    CHECK(a.to_vector() == std::vector<float>{3, 2});
    CHECK(b.to_vector() == std::vector<float>{1});
    CHECK(comm().test(request));  // a completed request stays complete
}
