// The "nccl" communicator backend: the collectives of framework/communicator.h between GPUs over NCCL (the real
// library, or the emulator's in-process stand-in under -DCUEMU, through cuda/nccl_shim.h). Registered by name from
// here, so the core never names NCCL.
//
// Bootstrap (the factory, given the "mpi" communicator as `base`), as llm.c does: rank 0 calls ncclGetUniqueId,
// base broadcasts the id, every rank picks GPU local_rank % device count (framework/communicator.h: its index
// among the ranks of its machine) and calls ncclCommInitRank. The communicator keeps base to end the job through
// it (fail_all_ranks: MPI_Abort).
//
// Buffers: CUDA memory of this rank's device goes to NCCL directly (handles()); host buffers (the order check's
// exchange, CPU tensors) are staged through device memory. Every blocking collective runs on the device's stream
// (the one its kernels use, so it is ordered after them) and is complete when the call returns.
//
// Non-blocking all-reduce (all_reduce_sum_start, for the gradient buckets): issued on a communication stream of
// its own, after an event recorded on the device's stream (so after the kernels that wrote the buffer); test()
// queries an event recorded after it (and NCCL's asynchronous error), wait() polls it until the deadline counted
// from the start. On completion the device's stream is made to wait for it, and a staged host buffer is copied back.
// Blocking collectives (synchronized batch norm's) may be issued on the device's stream while buckets are in flight
// on the communication stream: every rank issues them in the same order, the order NCCL runs one communicator's
// operations in.
//
// Deadline: after issuing the NCCL call the host polls the stream (cudaStreamQuery) and NCCL's asynchronous error
// until the deadline; on expiry it aborts the NCCL communicator (ncclCommAbort: a pending NCCL collective cannot
// be cancelled otherwise) and throws an error naming the collective. The stand-in runs a collective on the host
// inside the call, with its own timeout for unmatched calls, which this backend sets to the deadline: there a
// never-matched collective, non-blocking ones too, fails in the call that issues it.
#include <chrono>
#include <cstring>
#include <map>
#include <string>
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
    NcclCommunicator(const ncclUniqueId& id, int rank, int world, int device, Options options,
                     std::shared_ptr<Communicator> base)
        : Communicator(options), rank_(rank), world_(world), device_(device), base_(std::move(base)) {
        CUDA_CHECK(cudaSetDevice(device_));
        ncclResult_t rc = ncclCommInitRank(&comm_, world, id, rank);
        STRATA_CHECK(rc == ncclSuccess, "communicator nccl: ncclCommInitRank of rank ", rank, " of ", world,
                     " on cuda:", device, " failed: ", ncclGetErrorString(rc));
    }
    ~NcclCommunicator() override {
        for (auto& [handle, p] : pending_) release(p);
        if (comm_) ncclCommDestroy(comm_);
        if (ready_) cudaEventDestroy(ready_);
        if (comm_stream_) cudaStreamDestroy(comm_stream_);
    }

    int rank() const override { return rank_; }
    int world_size() const override { return world_; }
    std::string backend() const override { return "nccl"; }
    bool handles(Device device) const override {
        return device.type == DeviceType::CPU || (device.type == DeviceType::CUDA && device.index == device_);
    }
    Device home_device() const override { return Device{DeviceType::CUDA, device_}; }
    // Ending the job is the base's (MPI_Abort reaches every process); without one, this process's.
    [[noreturn]] void fail_all_ranks(const std::string& message) override {
        if (base_) base_->fail_all_ranks(message);
        Communicator::fail_all_ranks(message);
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

    // Non-blocking: on the communication stream, after an event recorded on the compute stream (so after the
    // kernels that wrote a device buffer), while the compute stream goes on with the backward. A host buffer is
    // staged into device memory first and copied back once the all-reduce is complete (test or wait).
    int64_t do_all_reduce_sum_start(void* data, int64_t count, CommType type, Device device) override {
        CUDA_CHECK(cudaSetDevice(device_));
        if (!comm_stream_) {
            CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
            CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
        }
        Pending p;
        p.op = current_op();
        p.bytes = size_t(count) * comm_type_size(type);
        if (device.type == DeviceType::CUDA) {
            STRATA_CHECK(device.index == device_, "communicator nccl: ", current_op(), " on cuda:", device.index,
                         ", but this rank's GPU is cuda:", device_);
            p.buffer = data;
            CUDA_CHECK(cudaEventRecord(ready_, cuda_current_stream()));
            CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready_, 0));
        } else {
            p.host = data;
            CUDA_CHECK(cudaMalloc(&p.buffer, p.bytes));
            CUDA_CHECK(cudaMemcpyAsync(p.buffer, data, p.bytes, cudaMemcpyHostToDevice, comm_stream_));
        }
        CUDA_CHECK(cudaEventCreateWithFlags(&p.done, cudaEventDisableTiming));
        const int64_t handle = next_handle_++;
        pending_[handle] = p;
#if defined(CUEMU)
        cuemu::set_nccl_timeout_ms(int(options().timeout_seconds * 1000));
#endif
        ncclResult_t rc = ncclAllReduce(p.buffer, p.buffer, size_t(count), nccl_type(type), ncclSum, comm_,
                                        comm_stream_);
        if (rc != ncclSuccess) fail(current_op(), str("failed: ", ncclGetErrorString(rc)));
        CUDA_CHECK(cudaEventRecord(p.done, comm_stream_));
        return handle;
    }
    bool do_test(int64_t handle) override {
        Pending& p = pending(handle);
        if (!query(cudaEventQuery(p.done), p.op)) return false;
        complete(handle);
        return true;
    }
    void do_wait(const CollectiveRequest& request, std::chrono::steady_clock::time_point deadline) override {
        Pending& p = pending(request.handle);
        while (!query(cudaEventQuery(p.done), request.op)) {
            if (std::chrono::steady_clock::now() > deadline)
                fail(request.op, str("did not complete within ", options().timeout_seconds, " s of its start"));
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        complete(request.handle);
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
        if (rc != ncclSuccess) fail(current_op(), str("failed: ", ncclGetErrorString(rc)));
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + std::chrono::duration<double>(options().timeout_seconds);
        while (!query(cudaStreamQuery(stream), current_op())) {
            if (clock::now() > deadline)
                fail(current_op(), str("did not complete within ", options().timeout_seconds, " s"));
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    // Whether the work a stream or event query is about has completed; a CUDA error, or NCCL's asynchronous error
    // while it is pending, fails `op`.
    bool query(cudaError_t status, const std::string& op) {
        if (status == cudaSuccess) return true;
        STRATA_CHECK(status == cudaErrorNotReady, "communicator nccl: rank ", rank_, ": ", op, ": CUDA error ",
                     cudaGetErrorString(status));
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(comm_, &async);
        if (async != ncclSuccess) fail(op, str("failed: ", ncclGetErrorString(async)));
        return false;
    }

    [[noreturn]] void fail(const std::string& op, const std::string& what) {
        if (comm_) ncclCommAbort(comm_);
        comm_ = nullptr;
        STRATA_FAIL("communicator nccl: rank ", rank_, ": ", op, " ", what, " (another rank has not joined it, or "
                    "calls collectives in a different order; STRATA_COLLECTIVE_DEBUG=1 checks the order)");
    }

    // A non-blocking all-reduce in flight: its device buffer (the caller's, or staged from `host`) and the event
    // recorded after it on the communication stream.
    struct Pending {
        void* buffer = nullptr;
        void* host = nullptr;  // the caller's host buffer, to copy back into; null: the buffer is the caller's
        size_t bytes = 0;
        cudaEvent_t done = nullptr;
        std::string op;
    };
    Pending& pending(int64_t handle) {
        auto it = pending_.find(handle);
        STRATA_CHECK(it != pending_.end(), "communicator nccl: unknown request ", handle);
        return it->second;
    }
    // The all-reduce is done: later work of the compute stream is ordered after it, a staged result goes back.
    void complete(int64_t handle) {
        Pending p = pending(handle);
        pending_.erase(handle);
        CUDA_CHECK(cudaSetDevice(device_));
        if (p.host) CUDA_CHECK(cudaMemcpy(p.host, p.buffer, p.bytes, cudaMemcpyDeviceToHost));
        else CUDA_CHECK(cudaStreamWaitEvent(cuda_current_stream(), p.done, 0));
        release(p);
    }
    static void release(Pending& p) {
        if (p.host) cudaFree(p.buffer);
        if (p.done) cudaEventDestroy(p.done);
    }

    ncclComm_t comm_ = nullptr;
    int rank_, world_, device_;
    cudaStream_t comm_stream_ = nullptr;  // the non-blocking all-reduces', created on first use
    cudaEvent_t ready_ = nullptr;         // recorded on the compute stream before each
    std::map<int64_t, Pending> pending_;
    int64_t next_handle_ = 0;
    std::shared_ptr<Communicator> base_;  // the bootstrap's (MPI), kept for fail_all_ranks; may be null
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
    return make_nccl_communicator(id.to_vector_i64(), base->rank(), base->world_size(),
                                  local_rank(base->rank()) % devices, options, base);
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
                                                     Communicator::Options options,
                                                     std::shared_ptr<Communicator> base) {
    return std::make_shared<NcclCommunicator>(id_from_values(id), rank, world, device, options, std::move(base));
}

}  // namespace strata
