// The in-process NCCL stand-in (see nccl_emu.h).
#include "cuda/emu/nccl_emu.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/emu/internal.h"

using namespace cuemu::detail;

namespace {

enum class Kind { AllReduce, AllGather, Broadcast };

const char* kind_name(Kind k) {
    return k == Kind::AllReduce ? "ncclAllReduce" : k == Kind::AllGather ? "ncclAllGather" : "ncclBroadcast";
}

struct Call {
    Kind kind = Kind::AllReduce;
    int root = 0;
    const void* send = nullptr;
    void* recv = nullptr;
    size_t count = 0;
    ncclDataType_t type = ncclFloat;
    ncclRedOp_t op = ncclSum;
    bool present = false;
};

// One collective: the calls of every rank with the same sequence number.
struct Collective {
    std::vector<Call> calls;
    int arrived = 0;
    int waits_left = 0;  // ranks that have still to collect the result; the last one erases the collective
    bool done = false;
    ncclResult_t result = ncclSuccess;
};

struct Clique {
    int nranks = 0;
    int alive = 0;
    std::mutex mutex;
    std::condition_variable done;
    std::map<uint64_t, Collective> pending;  // sequence number -> collective
};

std::atomic<int> g_timeout_ms{10000};

thread_local int t_group_depth = 0;
struct QueuedCall {
    ncclComm_t comm;
    Call call;
    std::source_location where;
};
thread_local std::vector<QueuedCall> t_group_calls;

const char* type_name(ncclDataType_t t) {
    return t == ncclFloat    ? "ncclFloat"
           : t == ncclDouble ? "ncclDouble"
           : t == ncclInt64  ? "ncclInt64"
                             : "an unsupported ncclDataType_t";
}

size_t type_size(ncclDataType_t t) {
    return t == ncclFloat ? 4 : 8;
}

template <typename T>
void reduce(Collective& c, int nranks) {
    size_t n = c.calls[0].count;
    ncclRedOp_t op = c.calls[0].op;
    std::vector<T> out(n);
    for (size_t i = 0; i < n; ++i) {
        T acc = static_cast<const T*>(c.calls[0].send)[i];
        for (int r = 1; r < nranks; ++r) {
            T v = static_cast<const T*>(c.calls[size_t(r)].send)[i];
            switch (op) {
                case ncclSum:
                case ncclAvg: acc += v; break;
                case ncclProd: acc *= v; break;
                case ncclMax: acc = v > acc ? v : acc; break;
                case ncclMin: acc = v < acc ? v : acc; break;
            }
        }
        out[i] = op == ncclAvg ? acc / T(nranks) : acc;
    }
    // Every rank's result is written only now, so a receive buffer may be its rank's send buffer (in place).
    for (int r = 0; r < nranks; ++r)
        std::copy(out.begin(), out.end(), static_cast<T*>(c.calls[size_t(r)].recv));
}

// All-gather and broadcast, as bytes. Every rank's result is staged first, so that receive buffers may overlap the
// send buffers (in place).
void run(Collective& c, int nranks) {
    const Call& first = c.calls[0];
    const size_t bytes = first.count * type_size(first.type);
    if (first.kind == Kind::AllReduce) {
        if (first.type == ncclFloat) reduce<float>(c, nranks);
        else if (first.type == ncclDouble) reduce<double>(c, nranks);
        else reduce<int64_t>(c, nranks);
        return;
    }
    std::vector<char> out;
    if (first.kind == Kind::AllGather) {
        for (int r = 0; r < nranks; ++r) {
            const char* send = static_cast<const char*>(c.calls[size_t(r)].send);
            out.insert(out.end(), send, send + bytes);
        }
    } else {
        const char* send = static_cast<const char*>(c.calls[size_t(first.root)].send);
        out.assign(send, send + bytes);
    }
    for (int r = 0; r < nranks; ++r) std::copy(out.begin(), out.end(), static_cast<char*>(c.calls[size_t(r)].recv));
}

}  // namespace

struct ncclComm {
    Clique* clique = nullptr;
    int rank = 0;
    int device = 0;
    uint64_t next_sequence = 0;
};

namespace {

// Adds one rank's call to its collective and runs the collective if it is complete; returns its sequence number.
uint64_t submit(ncclComm_t comm, const Call& call, const std::source_location& where) {
    Clique& clique = *comm->clique;
    std::lock_guard<std::mutex> lock(clique.mutex);
    uint64_t seq = comm->next_sequence++;
    Collective& c = clique.pending[seq];
    if (c.calls.empty()) {
        c.calls.resize(size_t(clique.nranks));
        c.waits_left = clique.nranks;
    }
    for (const Call& other : c.calls) {
        if (!other.present) continue;
        if (other.kind != call.kind || other.count != call.count || other.type != call.type ||
            other.op != call.op || other.root != call.root) {
            report_host(Severity::Error, where,
                        std::string(kind_name(call.kind)) + ": rank " + std::to_string(comm->rank) + "'s call #" +
                            std::to_string(seq) + " (count " + std::to_string(call.count) + ", " +
                            type_name(call.type) + ") does not match the other ranks' (" + kind_name(other.kind) +
                            ", count " + std::to_string(other.count) + ", " + type_name(other.type) +
                            ", or a different op or root)");
            c.result = ncclInvalidUsage;
        }
        break;
    }
    c.calls[size_t(comm->rank)] = call;
    c.calls[size_t(comm->rank)].present = true;
    if (++c.arrived == clique.nranks) {
        if (c.result == ncclSuccess) run(c, clique.nranks);
        c.done = true;
        clique.done.notify_all();
    }
    return seq;
}

// Waits until the collective `seq` of comm's clique has run.
ncclResult_t wait(ncclComm_t comm, uint64_t seq, const std::source_location& where) {
    Clique& clique = *comm->clique;
    std::unique_lock<std::mutex> lock(clique.mutex);
    Collective& c = clique.pending[seq];
    bool finished = clique.done.wait_for(lock, std::chrono::milliseconds(g_timeout_ms.load()), [&] { return c.done; });
    ncclResult_t result = c.result;
    if (!finished) {
        std::string missing;
        for (int r = 0; r < clique.nranks; ++r)
            if (!c.calls[size_t(r)].present) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        report_host(Severity::Error, where,
                    std::string(kind_name(c.calls[size_t(comm->rank)].kind)) + ": rank " +
                        std::to_string(comm->rank) + "'s call #" + std::to_string(seq) + " was not matched within " + std::to_string(g_timeout_ms.load()) + " ms: rank(s) " + missing +
                        " never made the matching call (a single host thread driving several ranks must put the "
                        "calls between ncclGroupStart() and ncclGroupEnd())");
        result = ncclInvalidUsage;
    }
    if (--c.waits_left == 0) clique.pending.erase(seq);
    return result;
}

bool check_comm(const char* api, ncclComm_t comm, const std::source_location& where) {
    if (comm && comm->clique) return true;
    report_host(Severity::Error, where, std::string(api) + ": the communicator is null or destroyed");
    return false;
}

}  // namespace

namespace cuemu {
void set_nccl_timeout_ms(int milliseconds) {
    g_timeout_ms = milliseconds;
}
}  // namespace cuemu

ncclResult_t ncclGetVersion(int* version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
    switch (result) {
        case ncclSuccess: return "no error";
        case ncclUnhandledCudaError: return "unhandled cuda error";
        case ncclSystemError: return "unhandled system error";
        case ncclInternalError: return "internal error";
        case ncclInvalidArgument: return "invalid argument";
        case ncclInvalidUsage: return "invalid usage";
        case ncclRemoteError: return "remote process exited or there was a network error";
        case ncclInProgress: return "NCCL operation in progress";
    }
    return "unknown result code";
}

ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int* devlist, cuemu_where where) {
    int devices = cuemu::settings().devices;
    if (!comms || ndev < 1) {
        report_host(Severity::Error, where, "ncclCommInitAll: comms is null or ndev < 1");
        return ncclInvalidArgument;
    }
    for (int r = 0; r < ndev; ++r) {
        int d = devlist ? devlist[r] : r;
        if (d < 0 || d >= devices) {
            report_host(Severity::Error, where,
                        "ncclCommInitAll: device " + std::to_string(d) + " does not exist (" + std::to_string(devices) +
                            " emulated device(s); set CUEMU_DEVICES or cuemu::settings().devices)");
            return ncclInvalidArgument;
        }
    }
    Clique* clique = new Clique();
    clique->nranks = ndev;
    clique->alive = ndev;
    for (int r = 0; r < ndev; ++r) comms[r] = new ncclComm{clique, r, devlist ? devlist[r] : r, 0};
    return ncclSuccess;
}

namespace {

// The cliques of ncclCommInitRank, by unique id, until every rank has joined.
std::mutex g_forming_mutex;
std::map<std::string, Clique*> g_forming;
std::atomic<uint64_t> g_next_id{1};

}  // namespace

ncclResult_t ncclGetUniqueId(ncclUniqueId* unique_id) {
    if (!unique_id) return ncclInvalidArgument;
    std::fill(std::begin(unique_id->internal), std::end(unique_id->internal), '\0');
    std::string text = "cuemu-nccl-" + std::to_string(g_next_id++);
    std::copy(text.begin(), text.end(), unique_id->internal);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank, cuemu_where where) {
    if (!comm || nranks < 1 || rank < 0 || rank >= nranks) {
        report_host(Severity::Error, where, "ncclCommInitRank: comm is null, nranks < 1 or rank outside 0..nranks-1");
        return ncclInvalidArgument;
    }
    int device = 0;
    cudaGetDevice(&device);
    std::string key(id.internal, strnlen(id.internal, NCCL_UNIQUE_ID_BYTES));
    std::lock_guard<std::mutex> lock(g_forming_mutex);
    Clique*& clique = g_forming[key];
    if (!clique) {
        clique = new Clique();
        clique->nranks = nranks;
    }
    if (clique->nranks != nranks) {
        report_host(Severity::Error, where, "ncclCommInitRank: nranks " + std::to_string(nranks) +
                                                " differs from the other ranks' " + std::to_string(clique->nranks));
        return ncclInvalidUsage;
    }
    *comm = new ncclComm{clique, rank, device, 0};
    std::lock_guard<std::mutex> alive_lock(clique->mutex);  // ncclCommDestroy counts down under it
    if (++clique->alive == nranks) g_forming.erase(key);
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
    if (!comm || !async_error) return ncclInvalidArgument;
    *async_error = ncclSuccess;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm, cuemu_where where) { return ncclCommDestroy(comm, where); }

ncclResult_t ncclCommDestroy(ncclComm_t comm, cuemu_where where) {
    if (!check_comm("ncclCommDestroy", comm, where)) return ncclInvalidArgument;
    Clique* clique = comm->clique;
    bool last;
    {
        // A clique whose last member goes before every rank joined is still forming: it leaves the table too, so a
        // late ncclCommInitRank starts a new one instead of joining a deleted one.
        std::lock_guard<std::mutex> forming(g_forming_mutex);
        std::lock_guard<std::mutex> lock(clique->mutex);
        last = --clique->alive == 0;
        for (auto it = g_forming.begin(); last && it != g_forming.end(); ++it) {
            if (it->second != clique) continue;
            g_forming.erase(it);
            break;
        }
    }
    comm->clique = nullptr;
    delete comm;
    if (last) delete clique;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(ncclComm_t comm, int* count) {
    if (!comm || !comm->clique || !count) return ncclInvalidArgument;
    *count = comm->clique->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(ncclComm_t comm, int* rank) {
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = comm->rank;
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(ncclComm_t comm, int* device) {
    if (!comm || !device) return ncclInvalidArgument;
    *device = comm->device;
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(cuemu_where) {
    ++t_group_depth;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(cuemu_where where) {
    if (t_group_depth == 0) {
        report_host(Severity::Error, where, "ncclGroupEnd without a matching ncclGroupStart");
        return ncclInvalidUsage;
    }
    if (--t_group_depth > 0) return ncclSuccess;
    std::vector<QueuedCall> calls;
    calls.swap(t_group_calls);
    std::vector<uint64_t> seqs;
    for (const QueuedCall& q : calls) seqs.push_back(submit(q.comm, q.call, q.where));
    ncclResult_t result = ncclSuccess;
    for (size_t i = 0; i < calls.size(); ++i) {
        ncclResult_t r = wait(calls[i].comm, seqs[i], calls[i].where);
        if (result == ncclSuccess) result = r;
    }
    return result;
}

namespace {

// The checks and the submission every collective shares. send_bytes/recv_bytes: the buffer sizes it accesses.
ncclResult_t collective(const char* api, Call call, size_t send_bytes, size_t recv_bytes, ncclComm_t comm,
                        cudaStream_t stream, const std::source_location& where) {
    if (!check_comm(api, comm, where)) return ncclInvalidArgument;
    if (call.type != ncclFloat && call.type != ncclDouble && call.type != ncclInt64) {
        report_host(Severity::Error, where,
                    std::string(api) + ": datatype " + std::to_string(int(call.type)) +
                        " is not emulated (ncclFloat, ncclDouble, ncclInt64)");
        return ncclInvalidArgument;
    }
    if (call.op < ncclSum || call.op > ncclAvg) {
        report_host(Severity::Error, where, std::string(api) + ": invalid ncclRedOp_t " + std::to_string(int(call.op)));
        return ncclInvalidArgument;
    }
    if (call.root < 0 || call.root >= comm->clique->nranks) {
        report_host(Severity::Error, where, std::string(api) + ": root " + std::to_string(call.root) +
                                                " is not a rank of the communicator");
        return ncclInvalidArgument;
    }
    if (!is_valid_stream(stream)) {
        report_host(Severity::Error, where, std::string(api) + ": the stream is not one cudaStreamCreate returned");
        return ncclInvalidArgument;
    }
    if (call.count > 0 && ((send_bytes > 0 && !check_device_range(api, "sendbuff", call.send, send_bytes, where)) ||
                           !check_device_range(api, "recvbuff", call.recv, recv_bytes, where)))
        return ncclInvalidArgument;
    if (t_group_depth > 0) {
        t_group_calls.push_back({comm, call, where});
        return ncclSuccess;
    }
    uint64_t seq = submit(comm, call, where);
    return wait(comm, seq, where);
}

}  // namespace

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream, cuemu_where where) {
    size_t bytes = count * type_size(datatype);
    Call call{Kind::AllReduce, 0, sendbuff, recvbuff, count, datatype, op, false};
    return collective("ncclAllReduce", call, bytes, bytes, comm, stream, where);
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream, cuemu_where where) {
    size_t bytes = sendcount * type_size(datatype);
    size_t ranks = comm && comm->clique ? size_t(comm->clique->nranks) : 1;
    Call call{Kind::AllGather, 0, sendbuff, recvbuff, sendcount, datatype, ncclSum, false};
    return collective("ncclAllGather", call, bytes, bytes * ranks, comm, stream, where);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream, cuemu_where where) {
    size_t bytes = count * type_size(datatype);
    bool is_root = comm && comm->rank == root;
    Call call{Kind::Broadcast, root, sendbuff, recvbuff, count, datatype, ncclSum, false};
    return collective("ncclBroadcast", call, is_root ? bytes : 0, bytes, comm, stream, where);
}
