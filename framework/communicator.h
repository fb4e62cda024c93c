// Communicators: the collectives of data-parallel training (rank, world size, all_reduce sum, all_gather,
// broadcast, barrier), independent of the transport that carries them.
//
// A Communicator is an abstract class with one implementation per backend, registered by name the way kernels are
// registered per device (framework/dispatch.h): the core defines the interface and the single-process backend and
// never names a transport. mpi/mpi_communicator.cpp registers "mpi" (Open MPI: CPU buffers, one machine or many);
// a GPU backend registers itself from cuda/. world_communicator() picks one: "mpi" when the process was started by
// mpirun (its environment says so), else the single-process communicator (rank 0 of 1, no collective), so a program
// started without mpirun runs exactly as it always did. docs/distributed.md has the design.
//
// Every rank must call the same collectives in the same order with the same sizes (as with MPI and NCCL). What
// this layer adds on top of the backends:
//   - a sequence number per collective, named in every error ("all_reduce #12");
//   - a deadline per collective (Options::timeout_seconds; STRATA_COLLECTIVE_TIMEOUT in the environment): a
//     collective that has not completed by then fails with an error naming it, instead of hanging forever;
//   - a debug mode (Options::check_order; STRATA_COLLECTIVE_DEBUG=1) that, before each collective, exchanges its
//     name, sequence number and size between the ranks and fails naming the first rank that disagrees;
//   - fail_all_ranks(): the way a rank that hit an error ends the whole job (one message naming the rank and the
//     cause, then every rank exits non-zero). The MPI backend also routes uncaught exceptions there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "framework/device.h"
#include "framework/tensor.h"

namespace strata {

// Element types on the wire. F64 has no tensor dtype: it travels in an I64 tensor of the same size (8 bytes per
// element) holding doubles, as batchnorm2d's per-channel statistics do.
enum class CommType { F32, F64, I64 };
size_t comm_type_size(CommType type);
const char* comm_type_name(CommType type);

// A non-blocking collective in flight (Communicator::all_reduce_sum_start). Its buffer must stay alive and untouched
// until wait() returns.
struct CollectiveRequest {
    int64_t handle = -1;  // the backend's; -1 once complete (or never started)
    std::string op;       // "all_reduce #12 (340 F32 values)", for errors
    int64_t bytes = 0;
    std::chrono::steady_clock::time_point started;  // the deadline counts from here
    bool pending() const { return handle >= 0; }
};

class Communicator {
public:
    struct Options {
        double timeout_seconds = 300;  // deadline of each collective
        bool check_order = false;      // exchange (op, sequence number, size) before each collective
    };

    explicit Communicator(Options options);
    virtual ~Communicator() = default;
    Communicator(const Communicator&) = delete;
    Communicator& operator=(const Communicator&) = delete;

    virtual int rank() const = 0;
    virtual int world_size() const = 0;
    virtual std::string backend() const = 0;  // "single", "mpi", ...
    // Whether the collectives can read and write buffers on `device` directly. The tensor forms below move other
    // tensors through host memory.
    virtual bool handles(Device device) const { return device.type == DeviceType::CPU; }
    // The device this rank's collectives run on (NCCL: its GPU), where the data-parallel trainer puts this rank's
    // model; the CPU for the host backends.
    virtual Device home_device() const { return kCPU; }

    // The collectives on raw buffers of `count` elements on `device` (one the backend handles). All ranks pass the
    // same count, type and root.
    //   all_reduce_sum:  data[i] = sum over ranks of data[i], in place; every rank gets the same bits
    //   all_gather:      recv[r * count + i] = send[i] of rank r (recv holds world_size * count elements)
    //   broadcast:       data = data of rank `root`
    void all_reduce_sum(void* data, int64_t count, CommType type, Device device);
    void all_gather(void* recv, const void* send, int64_t count, CommType type, Device device);
    void broadcast(void* data, int64_t count, CommType type, Device device, int root);
    void barrier();

    // The non-blocking all_reduce_sum: starts it and returns at once; the result is in `data` after wait(). It takes
    // its sequence number (and the order check) when it starts, so every rank must start it at the same point of its
    // sequence of collectives; other collectives may run while it is in flight (MPI allows several outstanding
    // collectives as long as every rank issues them in the same order). test() advances it and says whether it is
    // complete (some transports, Open MPI's among them, progress a collective only inside MPI calls); wait() blocks
    // until it completes, or throws past the deadline counted from its start, with the same error as the blocking
    // form. One rank: complete at once.
    CollectiveRequest all_reduce_sum_start(void* data, int64_t count, CommType type, Device device);
    bool test(CollectiveRequest& request);
    void wait(CollectiveRequest& request);

    // Ends the job: prints "strata: rank R of W failed: <message>" to stderr once, then makes every rank exit with
    // a non-zero code (MPI_Abort under MPI; exit() in a single process). Never returns.
    [[noreturn]] virtual void fail_all_ranks(const std::string& message);

    const Options& options() const { return options_; }
    void set_timeout(double seconds);
    void set_check_order(bool on) { options_.check_order = on; }
    int64_t collectives_called() const { return sequence_; }
    // Wall time spent inside the collectives so far (transfers and waiting for the other ranks), for benchmarks.
    double seconds_in_collectives() const { return seconds_; }

protected:
    // The backend's collectives. Called only with world_size() > 1 (the wrappers above do nothing, or copy, for
    // one rank) and after the order check. They must finish within options().timeout_seconds or throw an error
    // that names current_op().
    virtual void do_all_reduce_sum(void* data, int64_t count, CommType type, Device device) = 0;
    virtual void do_all_gather(void* recv, const void* send, int64_t count, CommType type, Device device) = 0;
    virtual void do_broadcast(void* data, int64_t count, CommType type, Device device, int root) = 0;
    virtual void do_barrier() = 0;
    // The non-blocking all_reduce: returns a handle >= 0 for do_test/do_wait, or -1 when it completed already. The
    // default runs the blocking form. do_wait throws past `deadline` an error naming request.op.
    virtual int64_t do_all_reduce_sum_start(void* data, int64_t count, CommType type, Device device);
    virtual bool do_test(int64_t handle);
    virtual void do_wait(const CollectiveRequest& request, std::chrono::steady_clock::time_point deadline);
    // "all_reduce #12 (340 F32 values)": the collective in progress, for error messages.
    const std::string& current_op() const { return current_op_; }

private:
    void begin(const char* op, int64_t count, CommType type, int root);

    Options options_;
    int64_t sequence_ = 0;
    double seconds_ = 0;
    std::string current_op_;
};

// The tensor forms: contiguous F32 or I64 tensors (type F64 reinterprets an I64 tensor's storage as doubles) on
// any device; a device the backend does not handle goes through a host copy.
void all_reduce_sum(Communicator& comm, const Tensor& t, CommType type);  // in place
void all_reduce_sum(Communicator& comm, const Tensor& t);                 // the tensor's own dtype
// Shape [world_size, *t.shape], on t's device.
Tensor all_gather(Communicator& comm, const Tensor& t, CommType type);
Tensor all_gather(Communicator& comm, const Tensor& t);
void broadcast(Communicator& comm, const Tensor& t, int root);  // in place

// Rank 0 of 1: every collective is the identity (all_gather copies). What a program started without mpirun gets.
std::shared_ptr<Communicator> make_single_process_communicator(Communicator::Options options = {});

// Backends register a factory by name; a backend built on another one (a GPU backend bootstrapped over MPI) takes
// it as `base`.
using CommunicatorFactory =
    std::function<std::shared_ptr<Communicator>(Communicator::Options options, std::shared_ptr<Communicator> base)>;
struct CommunicatorRegistrar {
    CommunicatorRegistrar(const char* name, CommunicatorFactory factory);
};
bool has_communicator_backend(const std::string& name);
// Builds the named backend (fails listing the registered ones when it is missing).
std::shared_ptr<Communicator> make_communicator(const std::string& name, Communicator::Options options,
                                                std::shared_ptr<Communicator> base = nullptr);

// Whether this process was started by a launcher that expects MPI (mpirun sets OMPI_COMM_WORLD_SIZE, other MPIs
// PMI_SIZE or PMIX_RANK).
bool launched_by_mpirun();
// The options from the environment: STRATA_COLLECTIVE_TIMEOUT=<seconds>, STRATA_COLLECTIVE_DEBUG=1.
Communicator::Options communicator_options_from_env();
// The process-wide communicator over all ranks, created on the first call: "mpi" when launched_by_mpirun(), else
// the single-process one. Options from the environment.
std::shared_ptr<Communicator> world_communicator();

// ---- choosing the backend of data-parallel training ----
//
// The `communicator` config key: "mpi", "nccl" or "auto" (NCCL for tensors on a CUDA device when this build has
// the "nccl" backend, else MPI). One rank: "single" (no collective). "nccl" with a CPU device, or in a build
// without it, is an error that names the fix. `have_nccl` is has_communicator_backend("nccl") (a parameter, so the
// rule is testable in any build).
std::string choose_data_parallel_backend(const std::string& setting, Device device, int world, bool have_nccl);
// This process's index among the ranks of its machine: OMPI_COMM_WORLD_LOCAL_RANK (Open MPI's mpirun), else
// MPI_LOCALRANKID (MPICH) or SLURM_LOCALID; without any of them, `rank` (every rank on one machine).
int local_rank(int rank);
// The communicator of data-parallel training over `base`'s ranks (world_communicator()): base itself, or the
// chosen GPU backend bootstrapped over it (its GPU: local_rank % the GPU count). Options: base's.
std::shared_ptr<Communicator> data_parallel_communicator(const std::string& setting, Device device,
                                                         std::shared_ptr<Communicator> base);
// Where this rank's model lives: `configured` (the device setting) on one rank or on the CPU; on several ranks
// with a CUDA device, comm's GPU (NCCL), else GPU local_rank % the GPU count, so ranks on one machine share them out.
Device data_parallel_device(Device configured, const Communicator& comm);

}  // namespace strata
