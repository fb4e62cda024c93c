// The "mpi" communicator backend (framework/communicator.h): the collectives over MPI_COMM_WORLD, on host buffers.
// Compiled with Open MPI's flags (mpicxx --showme:compile); registered by name, so the core never names MPI.
//
// Deadlines: MPI's blocking collectives cannot time out, so every collective is the non-blocking MPI-3 form
// (MPI_Iallreduce, MPI_Iallgather, MPI_Ibcast, MPI_Ibarrier) completed by polling MPI_Test until it completes or
// the deadline passes. A non-blocking collective advances only inside MPI_Test (Open MPI runs it as a schedule of
// rounds, and a 16 MB all-reduce has hundreds): sleeping between tests made psp18w32's gradient averaging 0.5 s
// instead of 0.012 s (docs/PERFORMANCE.md). So the rank tests continuously, yielding the core between tests, for
// as long as the transfer may take (50 ms plus the bytes at 1 GB/s); past that it is waiting for a slow peer and alternates a millisecond of tests with
// half a millisecond of sleep, leaving the core to that peer (ranks may share cores) while a transfer that starts
// late still advances at full speed two thirds of the time. A missed deadline throws an Error naming the collective; the
// request cannot be cancelled, so the job is over: the exception reaches the terminate handler below, or the
// program's own handler calls fail_all_ranks.
//
// The non-blocking all_reduce (all_reduce_sum_start) keeps its MPI_Request under a handle until test() sees it
// complete or wait() polls it as above, with the deadline counted from its start.
//
// Failures: fail_all_ranks prints one line naming the rank and the cause and calls MPI_Abort, which makes mpirun
// kill every rank (they exit non-zero). The communicator installs a std::terminate handler that does the same for
// an exception nobody caught, so a rank that throws never leaves the others waiting in a collective.
//
// MPI is initialised by the first communicator (MPI_THREAD_FUNNELED: collectives come from the thread that created
// it) and finalised at exit.
#define OMPI_SKIP_MPICXX 1  // the C API only (the C++ bindings are deprecated and warn)
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <thread>

#include "framework/check.h"
#include "framework/communicator.h"

namespace strata {

namespace {

MPI_Datatype mpi_type(CommType type) {
    switch (type) {
        case CommType::F32: return MPI_FLOAT;
        case CommType::F64: return MPI_DOUBLE;
        case CommType::I64: return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
}

std::string mpi_error_string(int code) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    return std::string(text, size_t(length));
}

int g_rank = 0, g_world = 1;

// MPI_Abort after one line on stderr.
[[noreturn]] void abort_job(const std::string& message) {
    std::fprintf(stderr, "strata: rank %d of %d failed: %s\n", g_rank, g_world, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; this is for the compiler
}

// std::terminate handler: an uncaught exception on any rank ends the whole job.
[[noreturn]] void terminate_handler() {
    std::string cause = "terminated without an active exception";
    if (std::exception_ptr current = std::current_exception()) {
        try {
            std::rethrow_exception(current);
        } catch (const std::exception& e) {
            cause = e.what();
        } catch (...) {
            cause = "an exception that is not a std::exception";
        }
    }
    abort_job(cause);
}

void finalize_at_exit() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

class MpiCommunicator : public Communicator {
public:
    explicit MpiCommunicator(Options options) : Communicator(options) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized) {
            int provided = 0;
            int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
            STRATA_CHECK(rc == MPI_SUCCESS, "communicator mpi: MPI_Init_thread failed: ", mpi_error_string(rc));
            std::atexit(finalize_at_exit);
        }
        // Errors come back as codes (checked below) instead of aborting inside MPI without a message.
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &world_);
        g_rank = rank_;
        g_world = world_;
        std::set_terminate(terminate_handler);
    }

    int rank() const override { return rank_; }
    int world_size() const override { return world_; }
    std::string backend() const override { return "mpi"; }

    [[noreturn]] void fail_all_ranks(const std::string& message) override { abort_job(message); }

protected:
    void do_all_reduce_sum(void* data, int64_t count, CommType type, Device device) override {
        check_host(device);
        MPI_Request request;
        check(MPI_Iallreduce(MPI_IN_PLACE, data, mpi_count(count), mpi_type(type), MPI_SUM, MPI_COMM_WORLD,
                             &request));
        wait(request, count * int64_t(comm_type_size(type)));
    }
    void do_all_gather(void* recv, const void* send, int64_t count, CommType type, Device device) override {
        check_host(device);
        MPI_Request request;
        check(MPI_Iallgather(send, mpi_count(count), mpi_type(type), recv, mpi_count(count), mpi_type(type),
                             MPI_COMM_WORLD, &request));
        wait(request, world_ * count * int64_t(comm_type_size(type)));
    }
    void do_broadcast(void* data, int64_t count, CommType type, Device device, int root) override {
        check_host(device);
        MPI_Request request;
        check(MPI_Ibcast(data, mpi_count(count), mpi_type(type), root, MPI_COMM_WORLD, &request));
        wait(request, count * int64_t(comm_type_size(type)));
    }
    void do_barrier() override {
        MPI_Request request;
        check(MPI_Ibarrier(MPI_COMM_WORLD, &request));
        wait(request, 0);
    }
    int64_t do_all_reduce_sum_start(void* data, int64_t count, CommType type, Device device) override {
        check_host(device);
        MPI_Request request;
        check(MPI_Iallreduce(MPI_IN_PLACE, data, mpi_count(count), mpi_type(type), MPI_SUM, MPI_COMM_WORLD,
                             &request));
        const int64_t handle = next_handle_++;
        requests_[handle] = request;
        return handle;
    }
    bool do_test(int64_t handle) override {
        auto it = requests_.find(handle);
        STRATA_CHECK(it != requests_.end(), "communicator mpi: unknown request ", handle);
        int done = 0;
        int rc = MPI_Test(&it->second, &done, MPI_STATUS_IGNORE);
        STRATA_CHECK(rc == MPI_SUCCESS, "communicator mpi: rank ", rank_, ": testing a collective failed: ",
                     mpi_error_string(rc));
        if (done) requests_.erase(it);
        return done != 0;
    }
    void do_wait(const CollectiveRequest& request, std::chrono::steady_clock::time_point deadline) override {
        auto it = requests_.find(request.handle);
        STRATA_CHECK(it != requests_.end(), "communicator mpi: unknown request ", request.handle);
        poll(it->second, request.bytes, request.op, deadline);
        requests_.erase(it);
    }

private:
    void check_host(Device device) const {
        STRATA_CHECK(device.type == DeviceType::CPU, "communicator mpi: ", current_op(), " on ", device_name(device),
                     " memory; the MPI backend moves host buffers only (the tensor forms copy through the host)");
    }
    int mpi_count(int64_t count) const {
        STRATA_CHECK(count <= INT32_MAX, "communicator mpi: ", current_op(), " has more than 2^31-1 elements; "
                     "split it into smaller collectives");
        return int(count);
    }
    void check(int rc) const {
        STRATA_CHECK(rc == MPI_SUCCESS, "communicator mpi: rank ", rank_, ": ", current_op(), " failed: ",
                     mpi_error_string(rc));
    }
    // Waits for a blocking collective: polls it from now until the deadline.
    void wait(MPI_Request& request, int64_t bytes) const {
        const auto now = std::chrono::steady_clock::now();
        poll(request, bytes, current_op(), now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                    std::chrono::duration<double>(options().timeout_seconds)));
    }
    // Polls the request `op`, a collective of `bytes`, until it completes or the deadline passes.
    void poll(MPI_Request& request, int64_t bytes, const std::string& op,
              std::chrono::steady_clock::time_point deadline) const {
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        // how long the transfer itself may take: 50 ms, plus the bytes at 1 GB/s
        const auto transfer = std::chrono::milliseconds(50) + std::chrono::nanoseconds(bytes);
        for (;;) {
            int done = 0;
            int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
            STRATA_CHECK(rc == MPI_SUCCESS, "communicator mpi: rank ", rank_, ": ", op, " failed: ",
                         mpi_error_string(rc));
            if (done) return;
            if (clock::now() > deadline) {
                STRATA_FAIL("communicator mpi: rank ", rank_, ": ", op, " did not complete within ",
                            options().timeout_seconds, " s: another rank has not joined it (it failed, is slower "
                            "than the deadline, or calls collectives in a different order; STRATA_COLLECTIVE_DEBUG=1 "
                            "checks the order). Raise the deadline with STRATA_COLLECTIVE_TIMEOUT=<seconds> if the "
                            "ranks are just slow");
            }
            const auto waited = clock::now() - start;
            if (waited < transfer || waited % std::chrono::microseconds(1500) <
                                                              std::chrono::microseconds(1000))
                std::this_thread::yield();
            else
                std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
    }

    int rank_ = 0, world_ = 1;
    std::map<int64_t, MPI_Request> requests_;  // the non-blocking collectives in flight, by handle
    int64_t next_handle_ = 0;
};

CommunicatorRegistrar register_mpi("mpi", [](Communicator::Options options, std::shared_ptr<Communicator>) {
    return std::shared_ptr<Communicator>(std::make_shared<MpiCommunicator>(options));
});

}  // namespace

}  // namespace strata
