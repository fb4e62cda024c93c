// The "nccl" communicator backend: the collectives of framework/communicator.h between GPUs over NCCL (the real
// library, or the emulator's in-process stand-in under -DCUEMU, through cuda/nccl_shim.h). Registered by name from
// here, so the core never names NCCL.
//
// Bootstrap (the factory, given the "mpi" communicator as `base`), as llm.c does: rank 0 calls ncclGetUniqueId,
// base broadcasts the id, every rank picks GPU base.rank() % device count and calls ncclCommInitRank.
//
// Buffers: CUDA memory of this rank's device goes to NCCL directly (handles()); host buffers (the order check's
// exchange, CPU tensors) are staged through device memory. Every collective runs on the device's stream (the one
// its kernels use, so it is ordered after them) and is complete when the call returns.
//
// Deadline: after issuing the NCCL call the host polls the stream (cudaStreamQuery) and NCCL's asynchronous error
// until the deadline; on expiry it aborts the NCCL communicator (ncclCommAbort: a pending NCCL collective cannot
// be cancelled otherwise) and throws an error naming the collective. The stand-in runs a collective on the host
// inside the call, with its own timeout for unmatched calls, which this backend sets to the deadline.
#include <chrono>
#include <cstring>
#include <thread>

#include "cuda/backend.h"
#include "cuda/nccl_communicator.h"
#include "cuda/nccl_shim.h"

namespace strata {

namespace {

ncclDataType_t nccl_type(CommType type) {
    switch (type) {
        case CommType::F32: return ncclFloat;
        case CommType::F64: return ncclDouble;
        case CommType::I64: return ncclInt64;
    }
    return ncclFloat;
}

class NcclCommunicator : public Communicator {
public:
    NcclCommunicator(const ncclUniqueId& id, int rank, int world, int device, Options options)
        : Communicator(options), rank_(rank), world_(world), device_(device) {
        CUDA_CHECK(cudaSetDevice(device_));
        ncclResult_t rc = ncclCommInitRank(&comm_, world, id, rank);
        STRATA_CHECK(rc == ncclSuccess, "communicator nccl: ncclCommInitRank of rank ", rank, " of ", world,
                     " on cuda:", device, " failed: ", ncclGetErrorString(rc));
    }
    ~NcclCommunicator() override {
        if (comm_) ncclCommDestroy(comm_);
    }

    int rank() const override { return rank_; }
    int world_size() const override { return world_; }
    std::string backend() const override { return "nccl"; }
    bool handles(Device device) const override {
        return device.type == DeviceType::CPU || (device.type == DeviceType::CUDA && device.index == device_);
    }

protected:
    void do_all_reduce_sum(void* data, int64_t count, CommType type, Device device) override {
        Staged buf(*this, data, count, type, device, true);
        run([&](cudaStream_t s) {
            return ncclAllReduce(buf.ptr, buf.ptr, size_t(count), nccl_type(type), ncclSum, comm_, s);
        });
        buf.copy_back(data);
    }
    void do_all_gather(void* recv, const void* send, int64_t count, CommType type, Device device) override {
        Staged out(*this, recv, count * world_, type, device, false);
        Staged in(*this, const_cast<void*>(send), count, type, device, true);
        run([&](cudaStream_t s) { return ncclAllGather(in.ptr, out.ptr, size_t(count), nccl_type(type), comm_, s); });
        out.copy_back(recv);
    }
    void do_broadcast(void* data, int64_t count, CommType type, Device device, int root) override {
        Staged buf(*this, data, count, type, device, true);
        run([&](cudaStream_t s) {
            return ncclBroadcast(buf.ptr, buf.ptr, size_t(count), nccl_type(type), root, comm_, s);
        });
        buf.copy_back(data);
    }
    void do_barrier() override {
        float one = 1.0f;
        do_all_reduce_sum(&one, 1, CommType::F32, kCPU);
    }

private:
    // A buffer on this rank's device: the caller's own when it is there, else a staged copy of host memory.
    struct Staged {
        const NcclCommunicator& comm;
        void* ptr = nullptr;
        size_t bytes = 0;
        bool owned = false;
        Staged(const NcclCommunicator& c, void* data, int64_t count, CommType type, Device device, bool fill)
            : comm(c), bytes(size_t(count) * comm_type_size(type)) {
            if (device.type == DeviceType::CUDA) {
                STRATA_CHECK(device.index == comm.device_, "communicator nccl: ", comm.current_op(), " on cuda:",
                             device.index, ", but this rank's GPU is cuda:", comm.device_);
                ptr = data;
                return;
            }
            owned = true;
            CUDA_CHECK(cudaMalloc(&ptr, bytes ? bytes : 1));
            if (fill && bytes) CUDA_CHECK(cudaMemcpy(ptr, data, bytes, cudaMemcpyHostToDevice));
        }
        void copy_back(void* data) const {
            if (owned && bytes) CUDA_CHECK(cudaMemcpy(data, ptr, bytes, cudaMemcpyDeviceToHost));
        }
        ~Staged() {
            if (owned) cudaFree(ptr);
        }
    };

    // Issues the NCCL call on the device's stream and waits for it until the deadline.
    template <typename Call>
    void run(Call call) {
        CUDA_CHECK(cudaSetDevice(device_));
        cudaStream_t stream = cuda_current_stream();
#if defined(CUEMU)
        cuemu::set_nccl_timeout_ms(int(options().timeout_seconds * 1000));
#endif
        ncclResult_t rc = call(stream);
        if (rc != ncclSuccess) fail(str("failed: ", ncclGetErrorString(rc)));
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + std::chrono::duration<double>(options().timeout_seconds);
        for (;;) {
            cudaError_t done = cudaStreamQuery(stream);
            if (done == cudaSuccess) return;
            STRATA_CHECK(done == cudaErrorNotReady, "communicator nccl: rank ", rank_, ": ", current_op(),
                         ": CUDA error ", cudaGetErrorString(done));
            ncclResult_t async = ncclSuccess;
            ncclCommGetAsyncError(comm_, &async);
            if (async != ncclSuccess) fail(str("failed: ", ncclGetErrorString(async)));
            if (clock::now() > deadline) fail(str("did not complete within ", options().timeout_seconds, " s"));
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    [[noreturn]] void fail(const std::string& what) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        STRATA_FAIL("communicator nccl: rank ", rank_, ": ", current_op(), " ", what, " (another rank has not joined "
                    "it, or calls collectives in a different order; STRATA_COLLECTIVE_DEBUG=1 checks the order)");
    }

    ncclComm_t comm_ = nullptr;
    int rank_, world_, device_;
};

ncclUniqueId id_from_values(const std::vector<int64_t>& values) {
    ncclUniqueId id;
    STRATA_CHECK(values.size() * sizeof(int64_t) == sizeof(id), "communicator nccl: a unique id is ", sizeof(id),
                 " bytes, got ", values.size() * sizeof(int64_t));
    std::memcpy(&id, values.data(), sizeof(id));
    return id;
}

CommunicatorRegistrar register_nccl("nccl", [](Communicator::Options options, std::shared_ptr<Communicator> base) {
    STRATA_CHECK(base, "communicator nccl: needs a base communicator (\"mpi\") to share its unique id");
    int devices = 0;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    STRATA_CHECK(devices > 0, "communicator nccl: no CUDA device");
    Tensor id = from_vector_i64(base->rank() == 0 ? nccl_unique_id()
                                                  : std::vector<int64_t>(sizeof(ncclUniqueId) / sizeof(int64_t), 0),
                                {int64_t(sizeof(ncclUniqueId) / sizeof(int64_t))});
    broadcast(*base, id, 0);
    return make_nccl_communicator(id.to_vector_i64(), base->rank(), base->world_size(), base->rank() % devices,
                                  options);
});

}  // namespace

std::vector<int64_t> nccl_unique_id() {
    static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
    ncclUniqueId id;
    ncclResult_t rc = ncclGetUniqueId(&id);
    STRATA_CHECK(rc == ncclSuccess, "communicator nccl: ncclGetUniqueId failed: ", ncclGetErrorString(rc));
    std::vector<int64_t> values(sizeof(id) / sizeof(int64_t));
    std::memcpy(values.data(), &id, sizeof(id));
    return values;
}

std::shared_ptr<Communicator> make_nccl_communicator(const std::vector<int64_t>& id, int rank, int world, int device,
                                                     Communicator::Options options) {
    return std::make_shared<NcclCommunicator>(id_from_values(id), rank, world, device, options);
}

}  // namespace strata
