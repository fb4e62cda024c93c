// The NCCL stand-in of the emulated build: the subset of <nccl.h> Strata uses, in process.
//
// ncclCommInitAll makes one communicator per emulated GPU; ncclCommInitRank joins the clique named by an
// ncclUniqueId (from ncclGetUniqueId), one call per rank, each from the host thread that drives that rank (the
// bootstrap of a multi-process program, within one process: the id travels between threads, not processes). A collective is matched across the ranks by a
// per-communicator sequence number: the i-th ncclAllReduce on every rank's communicator is one operation, which
// runs on the host once every rank has called it. Two driving styles work, as with the real NCCL:
//   - one host thread drives all ranks: the calls go between ncclGroupStart() and ncclGroupEnd(), which runs them;
//   - one host thread per rank: each call blocks until every rank has made its call.
// A call that is never matched (a rank missing, or one thread driving several ranks outside a group) is reported
// after a timeout instead of hanging. Pointers must be device memory of the right size; the counts, types and
// operations of matched calls must agree.
#pragma once

#include "cuda/emu/runtime.h"

enum ncclResult_t {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
};

enum ncclDataType_t {
    ncclInt8 = 0, ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2, ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6, ncclHalf = 6,
    ncclFloat32 = 7, ncclFloat = 7,
    ncclFloat64 = 8, ncclDouble = 8,
};

enum ncclRedOp_t { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };

struct ncclComm;
using ncclComm_t = ncclComm*;

#define NCCL_UNIQUE_ID_BYTES 128
struct ncclUniqueId {
    char internal[NCCL_UNIQUE_ID_BYTES];
};

#define NCCL_VERSION_CODE 22809

ncclResult_t ncclGetVersion(int* version);
const char* ncclGetErrorString(ncclResult_t result);
// One communicator per device of devlist (devices 0..ndev-1 when devlist is null), all in one clique.
ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int* devlist, CUEMU_HERE_DEFAULT);
ncclResult_t ncclGetUniqueId(ncclUniqueId* unique_id);
// Rank `rank` of the nranks-rank clique `id`, on the calling thread's current device.
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank, CUEMU_HERE_DEFAULT);
ncclResult_t ncclCommDestroy(ncclComm_t comm, CUEMU_HERE_DEFAULT);
// Collectives run synchronously on the host here, so there is never an asynchronous error; abort = destroy.
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error);
ncclResult_t ncclCommAbort(ncclComm_t comm, CUEMU_HERE_DEFAULT);
ncclResult_t ncclCommCount(ncclComm_t comm, int* count);
ncclResult_t ncclCommUserRank(ncclComm_t comm, int* rank);
ncclResult_t ncclCommCuDevice(ncclComm_t comm, int* device);
ncclResult_t ncclGroupStart(CUEMU_HERE_DEFAULT);
ncclResult_t ncclGroupEnd(CUEMU_HERE_DEFAULT);
// The collectives emulated, on float, double and int64 (ncclFloat, ncclDouble, ncclInt64). sendbuff == recvbuff
// (in place) is allowed; for ncclAllGather, sendbuff may be rank r's slice of recvbuff.
// recvbuff[i] = op over the ranks of sendbuff[i], i < count (sum, prod, max, min, avg).
ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream, CUEMU_HERE_DEFAULT);
// recvbuff[r * sendcount + i] = rank r's sendbuff[i].
ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream, CUEMU_HERE_DEFAULT);
// recvbuff[i] = rank root's sendbuff[i] (sendbuff is read on the root only).
ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream, CUEMU_HERE_DEFAULT);

namespace cuemu {
// How long a collective waits for the other ranks before it is reported as unmatched (default 10 s).
void set_nccl_timeout_ms(int milliseconds);
}  // namespace cuemu
