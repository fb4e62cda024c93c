// The "nccl" communicator (cuda/nccl_communicator.cu) with two ranks in one process, one host thread each, as
// ncclCommInitRank allows: every collective against its expected values on device tensors and staged host buffers,
// the debug mode's order check, and synchronized batch norm over NCCL on device tensors against plain batch norm
// on the combined batch on the CPU. Rank r drives cuda:r: two GPUs, or the emulated programs' two devices.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cuda/backend.h"
#include "cuda/nccl_communicator.h"
#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/batchnorm2d.h"
#include "layers/mul.h"

using namespace strata;

namespace {

constexpr int kRanks = 2;

// The device rank r drives, or -1 when this machine cannot run two ranks (the emulated programs have two devices:
// two_devices.cu).
int rank_device(int r) {
    return backend(DeviceType::CUDA).device_count() >= kRanks ? r : -1;
}

// Counts the case as skipped where there is no CUDA device, or (real NCCL) fewer than two.
bool skip_unless_two_ranks() {
    if (skip_unless_cuda()) return true;
    if (rank_device(1) >= 0) return false;
    testing::skip_test_case();
    return true;
}

// Runs body(comm) for both ranks, one thread each; returns each rank's error text ("" when it finished).
std::vector<std::string> on_two_ranks(const std::function<void(Communicator&)>& body) {
    std::vector<int64_t> id = nccl_unique_id();
    // The allocators build their state on first use. Do that here, before the threads: the sanitizer programs link
    // the uninstrumented library, whose lazily-initialised statics ThreadSanitizer cannot see being synchronised.
    Tensor warm_up = zeros({1}).to(Device{DeviceType::CUDA, rank_device(0)});
    std::vector<std::string> errors(kRanks);
    std::vector<std::thread> threads;
    for (int r = 0; r < kRanks; ++r) {
        threads.emplace_back([&, r] {
            try {
                Communicator::Options options;
                options.timeout_seconds = 20;
                auto comm = make_nccl_communicator(id, r, kRanks, rank_device(r), options);
                body(*comm);
            } catch (const std::exception& e) {
                errors[size_t(r)] = e.what();
            }
        });
    }
    for (std::thread& t : threads) t.join();
    return errors;
}

// A failed expectation inside a rank's thread becomes that rank's error.
void expect(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

}  // namespace

TEST_CASE("cuda nccl communicator: every collective on device tensors and host buffers, two ranks") {
    if (skip_unless_two_ranks()) return;
    std::vector<std::string> errors = on_two_ranks([](Communicator& comm) {
        const int r = comm.rank();
        const Device dev{DeviceType::CUDA, rank_device(r)};
        expect(comm.backend() == "nccl" && comm.world_size() == 2, "rank and world");
        Tensor f = from_vector({1.5f + r, -2.f * (r + 1)}, {2}, dev);
        all_reduce_sum(comm, f);
        expect(f.to_vector() == std::vector<float>{4.f, -6.f}, "all_reduce F32");
        Tensor i = from_vector_i64({int64_t(1) << 40, r}, {2}, dev);
        all_reduce_sum(comm, i);
        expect(i.to_vector_i64() == std::vector<int64_t>{int64_t(1) << 41, 1}, "all_reduce I64");
        Tensor g = all_gather(comm, from_vector({float(r), float(10 + r)}, {2}, dev));
        expect(g.device() == dev && g.to_vector() == std::vector<float>{0, 10, 1, 11}, "all_gather");
        Tensor b = from_vector({float(r) + 0.5f}, {1}, dev);
        broadcast(comm, b, 1);
        expect(b.to_vector() == std::vector<float>{1.5f}, "broadcast");
        // host buffers go through the device; the order check exchanges host buffers
        comm.set_check_order(true);
        Tensor host = from_vector({float(r)}, {1});
        all_reduce_sum(comm, host);
        expect(host.to_vector() == std::vector<float>{1.f}, "all_reduce of a host tensor");
        comm.barrier();
        Tensor three = zeros({3}, DType::F32, dev);
        bool caught = false;
        try {
            if (r == 0) all_reduce_sum(comm, three);
            else broadcast(comm, three, 0);
        } catch (const Error& e) {
            caught = std::string(e.what()).find("different order: rank 0 calls all_reduce #") != std::string::npos;
        }
        expect(caught, "the order check names the mismatch");
    });
    CHECK(errors[0] == "");
    CHECK(errors[1] == "");
}

TEST_CASE("cuda nccl communicator: synchronized batchnorm2d over NCCL equals batchnorm2d on the combined batch") {
    if (skip_unless_two_ranks()) return;
    Generator gen(3);
    std::vector<float> xv = randn({4, 3, 3, 5}, gen).to_vector();
    for (float& v : xv) v = v * 2.f + 30.f;
    Tensor x = from_vector(xv, {4, 3, 3, 5}), dy = randn({4, 3, 3, 5}, gen);
    // the reference: one process, the whole batch, on the CPU
    Tensor x_ref = x.clone().requires_grad_();
    Tensor rm_ref = zeros({3}), rv_ref = ones({3});
    Tensor y_ref = batchnorm2d(x_ref, Tensor(), Tensor(), rm_ref, rv_ref, true, 0.1f, 1e-5f);
    y_ref.backward(dy);
    std::vector<std::vector<float>> y(kRanks), dx(kRanks), running_var(kRanks);
    std::vector<std::string> errors = on_two_ranks([&](Communicator& comm) {
        const int r = comm.rank();
        const Device dev{DeviceType::CUDA, rank_device(r)};
        const int64_t start = r == 0 ? 0 : 3, count = r == 0 ? 3 : 1;  // 3 + 1 images
        Tensor xr = x.narrow(0, start, count).clone().requires_grad_();
        Tensor rm = zeros({3}, DType::F32, dev), rv = ones({3}, DType::F32, dev);
        Tensor yr = batchnorm2d(xr.to(dev), Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f, &comm);
        yr.backward(dy.narrow(0, start, count).clone().to(dev));
        y[size_t(r)] = yr.to_vector();
        dx[size_t(r)] = xr.grad().to_vector();
        running_var[size_t(r)] = rv.to_vector();
    });
    REQUIRE(errors[0] == "");
    REQUIRE(errors[1] == "");
    std::vector<float> y_all = y[0], dx_all = dx[0];
    y_all.insert(y_all.end(), y[1].begin(), y[1].end());
    dx_all.insert(dx_all.end(), dx[1].begin(), dx[1].end());
    CHECK(difference_above(y_all, y_ref.to_vector(), 1e-4) == "");
    CHECK(difference_above(dx_all, x_ref.grad().to_vector(), 1e-4) == "");
    CHECK(difference_above(running_var[0], rv_ref.to_vector(), 1e-5) == "");
    CHECK(running_var[0] == running_var[1]);
}

TEST_CASE("cuda nccl communicator: non-blocking all-reduces in flight together complete with the sums") {
    if (skip_unless_two_ranks()) return;
    std::vector<std::string> errors = on_two_ranks([](Communicator& comm) {
        const int r = comm.rank();
        const Device dev{DeviceType::CUDA, rank_device(r)};
        // as the gradient buckets: host buffers (staged through the GPU), and a device tensor written by a kernel
        std::vector<float> host = {1.f + r, 2.f * r};
        std::vector<int64_t> ints = {int64_t(1) << 40, r};
        Tensor d = mul(from_vector({float(r), 5.f}, {2}, dev), 2.f);
        CollectiveRequest a = comm.all_reduce_sum_start(host.data(), 2, CommType::F32, kCPU);
        CollectiveRequest b = comm.all_reduce_sum_start(d.raw(), 2, CommType::F32, dev);
        CollectiveRequest c = comm.all_reduce_sum_start(ints.data(), 2, CommType::I64, kCPU);
        expect(a.pending() && b.pending() && c.pending(), "started and in flight");
        while (!comm.test(c)) std::this_thread::yield();
        expect(!c.pending(), "test() completes it");
        comm.wait(b);
        comm.wait(a);
        expect(host == std::vector<float>{3.f, 2.f}, "host F32 buffer");
        expect(ints == std::vector<int64_t>{int64_t(1) << 41, 1}, "host I64 buffer");
        expect(d.to_vector() == std::vector<float>{2.f, 20.f}, "device tensor");
        comm.barrier();  // the blocking collectives go on in step after them
        expect(comm.collectives_called() == 4, "sequence numbers");
    });
    CHECK(errors[0] == "");
    CHECK(errors[1] == "");
}

TEST_CASE("cuda nccl communicator: a non-blocking all-reduce another rank never joins fails at its deadline") {
    if (skip_unless_two_ranks()) return;
#if defined(CUEMU)
    cuemu::CaptureReports capture;  // the stand-in reports the unmatched call too
#endif
    std::atomic<bool> rank_0_done{false};
    std::vector<std::string> errors = on_two_ranks([&](Communicator& comm) {
        if (comm.rank() == 1) {  // never joins, but keeps its communicator until rank 0 is done
            while (!rank_0_done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            return;
        }
        struct Done {
            std::atomic<bool>& flag;
            ~Done() { flag = true; }
        } done{rank_0_done};
        comm.set_timeout(1.0);
        float x[3] = {1.f, 2.f, 3.f};
        CollectiveRequest request = comm.all_reduce_sum_start(x, 3, CommType::F32, kCPU);
        comm.wait(request);  // (on the emulator the start itself fails: its stand-in runs a collective in the call)
    });
    CAPTURE(errors[0]);
    CHECK(errors[0].find("rank 0: all_reduce #1 (3 F32 values)") != std::string::npos);
    CHECK(errors[0].find("another rank has not joined it") != std::string::npos);
    CHECK(errors[1] == "");
}

TEST_CASE("cuda communicator: the single-process communicator on device tensors") {
    if (skip_unless_cuda()) return;
    auto single = make_single_process_communicator();
    Tensor t = from_vector({1.f, 2.f}, {2}, kCuda0);
    all_reduce_sum(*single, t);
    broadcast(*single, t, 0);
    Tensor all = all_gather(*single, t);
    CHECK(all.device() == kCuda0);
    CHECK(all.shape() == Shape{1, 2});
    CHECK(all.to_vector() == std::vector<float>{1.f, 2.f});
}
