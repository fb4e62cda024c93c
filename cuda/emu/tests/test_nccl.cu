// A 2-"GPU" all-reduce through the NCCL stand-in, driven the two ways NCCL allows: one host thread for both ranks
// inside an NCCL group, and one host thread per rank. Each rank fills its buffer with a kernel first, as a
// data-parallel training step would (synchronized batch norm sums per-channel statistics this way).
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "cuda/emu/tests/helpers.h"
#include "cuda/nccl_shim.h"

namespace {

constexpr int kRanks = 2;
constexpr int kCount = 1000;

// x[i] = rank + i / 4
__global__ void fill_rank(float* x, int rank, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = float(rank) + float(i) * 0.25f;
}

// what every rank must hold after a sum all-reduce of fill_rank's values
float expected_sum(int i) {
    float sum = 0.0f;
    for (int r = 0; r < kRanks; ++r) sum += float(r) + float(i) * 0.25f;
    return sum;
}

// Sets the emulated device count for the test's duration.
struct EmulatedDevices {
    int saved;
    explicit EmulatedDevices(int n) : saved(cuemu::settings().devices) { cuemu::settings().devices = n; }
    ~EmulatedDevices() { cuemu::settings().devices = saved; }
};

struct Ranks {
    ncclComm_t comms[kRanks] = {};
    float* send[kRanks] = {};
    float* recv[kRanks] = {};
    Ranks() {
        REQUIRE(ncclCommInitAll(comms, kRanks, nullptr) == ncclSuccess);
        for (int r = 0; r < kRanks; ++r) {
            REQUIRE(cudaSetDevice(r) == cudaSuccess);
            REQUIRE(cudaMalloc(&send[r], kCount * sizeof(float)) == cudaSuccess);
            REQUIRE(cudaMalloc(&recv[r], kCount * sizeof(float)) == cudaSuccess);
        }
        cudaSetDevice(0);
    }
    ~Ranks() {
        for (int r = 0; r < kRanks; ++r) {
            cudaFree(send[r]);
            cudaFree(recv[r]);
            ncclCommDestroy(comms[r]);
        }
    }
    void check(float* const* buffers) const {
        for (int r = 0; r < kRanks; ++r) {
            std::vector<float> got(kCount);
            REQUIRE(cudaMemcpy(got.data(), buffers[r], kCount * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
            for (int i = 0; i < kCount; ++i) {
                if (got[size_t(i)] != expected_sum(i)) {
                    FAIL_CHECK("rank " << r << " element " << i << ": got " << got[size_t(i)] << ", want "
                                       << expected_sum(i));
                    break;
                }
            }
        }
    }
};

}  // namespace

TEST_CASE("cuemu nccl: one host thread drives both ranks inside a group") {
    EmulatedDevices devices(kRanks);
    Ranks ranks;
    for (int r = 0; r < kRanks; ++r) {
        REQUIRE(cudaSetDevice(r) == cudaSuccess);
        CUEMU_LAUNCH(fill_rank, (kCount + 127) / 128, 128, 0, 0, ranks.send[r], r, kCount);
    }
    REQUIRE(ncclGroupStart() == ncclSuccess);
    for (int r = 0; r < kRanks; ++r)
        CHECK(ncclAllReduce(ranks.send[r], ranks.recv[r], kCount, ncclFloat, ncclSum, ranks.comms[r], 0) ==
              ncclSuccess);
    REQUIRE(ncclGroupEnd() == ncclSuccess);
    ranks.check(ranks.recv);

    // in place, a second collective on the same communicators
    REQUIRE(ncclGroupStart() == ncclSuccess);
    for (int r = 0; r < kRanks; ++r)
        CHECK(ncclAllReduce(ranks.send[r], ranks.send[r], kCount, ncclFloat, ncclSum, ranks.comms[r], 0) ==
              ncclSuccess);
    REQUIRE(ncclGroupEnd() == ncclSuccess);
    ranks.check(ranks.send);
    cudaSetDevice(0);
    check_clean();
}

TEST_CASE("cuemu nccl: one host thread per rank") {
    EmulatedDevices devices(kRanks);
    Ranks ranks;
    ncclResult_t results[kRanks] = {};
    std::vector<std::thread> threads;
    for (int r = 0; r < kRanks; ++r) {
        threads.emplace_back([&ranks, &results, r] {
            cudaSetDevice(r);
            CUEMU_LAUNCH(fill_rank, (kCount + 127) / 128, 128, 0, 0, ranks.send[r], r, kCount);
            results[r] = ncclAllReduce(ranks.send[r], ranks.recv[r], kCount, ncclFloat, ncclSum, ranks.comms[r], 0);
        });
    }
    for (std::thread& t : threads) t.join();
    for (int r = 0; r < kRanks; ++r) CHECK(results[r] == ncclSuccess);
    ranks.check(ranks.recv);
    check_clean();
}

TEST_CASE("cuemu nccl: mismatched and unmatched calls are reported") {
    EmulatedDevices devices(kRanks);
    Ranks ranks;
    SUBCASE("the ranks pass different counts") {
        cuemu::CaptureReports capture;
        REQUIRE(ncclGroupStart() == ncclSuccess);
        ncclAllReduce(ranks.send[0], ranks.recv[0], kCount, ncclFloat, ncclSum, ranks.comms[0], 0);
        ncclAllReduce(ranks.send[1], ranks.recv[1], kCount / 2, ncclFloat, ncclSum, ranks.comms[1], 0);
        CHECK(ncclGroupEnd() == ncclInvalidUsage);
        CHECK(capture.errors() == 1);
        CHECK_MESSAGE(capture.contains("does not match the other ranks'"), capture.all());
    }
    SUBCASE("one host thread calls rank 0 outside a group") {
        cuemu::CaptureReports capture;
        cuemu::set_nccl_timeout_ms(50);
        CHECK(ncclAllReduce(ranks.send[0], ranks.recv[0], kCount, ncclFloat, ncclSum, ranks.comms[0], 0) ==
              ncclInvalidUsage);
        cuemu::set_nccl_timeout_ms(10000);
        CHECK_MESSAGE(capture.contains("rank(s) 1 never made the matching call"), capture.all());
        CHECK(capture.contains("ncclGroupStart"));
    }
    SUBCASE("a host buffer") {
        cuemu::CaptureReports capture;
        std::vector<float> host(kCount);
        CHECK(ncclAllReduce(host.data(), ranks.recv[0], kCount, ncclFloat, ncclSum, ranks.comms[0], 0) ==
              ncclInvalidArgument);
        CHECK_MESSAGE(capture.contains("sendbuff"), capture.all());
        CHECK(capture.contains("is not device memory"));
    }
}
