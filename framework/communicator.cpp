// The transport-independent part of the communicators: sequence numbers, the order check of the debug mode, the
// tensor forms, the single-process backend, the backend registry and the choice of the world communicator.
#include "framework/communicator.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "framework/check.h"

namespace strata {

size_t comm_type_size(CommType type) { return type == CommType::F32 ? 4 : 8; }

const char* comm_type_name(CommType type) {
    switch (type) {
        case CommType::F32: return "F32";
        case CommType::F64: return "F64";
        case CommType::I64: return "I64";
    }
    return "?";
}

namespace {

// The collectives, numbered for the order check.
enum OpTag : int64_t { kAllReduce = 1, kAllGather = 2, kBroadcast = 3, kBarrier = 4 };

const char* op_tag_name(int64_t tag) {
    switch (tag) {
        case kAllReduce: return "all_reduce";
        case kAllGather: return "all_gather";
        case kBroadcast: return "broadcast";
        case kBarrier: return "barrier";
    }
    return "?";
}

int64_t op_tag(const char* op) {
    for (int64_t tag : {kAllReduce, kAllGather, kBroadcast, kBarrier})
        if (std::strcmp(op, op_tag_name(tag)) == 0) return tag;
    STRATA_FAIL("communicator: unknown collective '", op, "'");
}

}  // namespace

Communicator::Communicator(Options options) : options_(options) { set_timeout(options.timeout_seconds); }

void Communicator::set_timeout(double seconds) {
    STRATA_CHECK(seconds > 0, "communicator: the collective timeout must be > 0 seconds, got ", seconds);
    options_.timeout_seconds = seconds;
}

void Communicator::begin(const char* op, int64_t count, CommType type, int root) {
    STRATA_CHECK(count >= 0, "communicator: ", op, " of a negative count (", count, ")");
    STRATA_CHECK(root >= 0 && root < world_size(), "communicator: ", op, " from root rank ", root,
                 ", but the ranks are 0..", world_size() - 1);
    ++sequence_;
    current_op_ = str(op, " #", sequence_, " (", count, " ", comm_type_name(type), " values)");
    if (!options_.check_order || world_size() == 1) return;
    // Every rank sends (op, sequence number, count, type, root); all must equal rank 0's. The exchange is itself a
    // collective of a fixed size, so it cannot be mismatched.
    const int64_t mine[5] = {op_tag(op), sequence_, count, int64_t(type), root};
    std::vector<int64_t> all(5 * size_t(world_size()));
    std::string op_name = current_op_;
    current_op_ = "the order check before " + op_name;
    do_all_gather(all.data(), mine, 5, CommType::I64, kCPU);
    current_op_ = op_name;
    auto describe = [](const int64_t* s) {
        return str(op_tag_name(s[0]), " #", s[1], " (", s[2], " ", comm_type_name(CommType(s[3])), " values",
                   s[0] == kBroadcast ? str(", root ", s[4]) : std::string(), ")");
    };
    for (int r = 1; r < world_size(); ++r) {
        const int64_t* theirs = all.data() + 5 * r;
        if (std::memcmp(theirs, all.data(), sizeof(mine)) == 0) continue;
        STRATA_FAIL("communicator: the ranks call collectives in a different order: rank 0 calls ",
                    describe(all.data()), " while rank ", r, " calls ", describe(theirs),
                    ". Every rank must call the same collectives in the same order with the same sizes");
    }
}

namespace {

// Adds the wall time of its scope to a counter (Communicator::seconds_in_collectives).
struct ScopeTimer {
    explicit ScopeTimer(double& total_) : total(total_), start(std::chrono::steady_clock::now()) {}
    ~ScopeTimer() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
    double& total;
    std::chrono::steady_clock::time_point start;
};

}  // namespace

void Communicator::all_reduce_sum(void* data, int64_t count, CommType type, Device device) {
    ScopeTimer timer(seconds_);
    begin("all_reduce", count, type, 0);
    if (world_size() > 1 && count > 0) do_all_reduce_sum(data, count, type, device);
}

void Communicator::all_gather(void* recv, const void* send, int64_t count, CommType type, Device device) {
    STRATA_CHECK(world_size() > 1 || device.type == DeviceType::CPU,
                 "communicator: raw all_gather on ", device_name(device), " memory needs a backend that handles it; use "
                 "the tensor form all_gather(comm, tensor)");
    ScopeTimer timer(seconds_);
    begin("all_gather", count, type, 0);
    if (count == 0) return;
    if (world_size() == 1) std::memmove(recv, send, size_t(count) * comm_type_size(type));
    else do_all_gather(recv, send, count, type, device);
}

void Communicator::broadcast(void* data, int64_t count, CommType type, Device device, int root) {
    ScopeTimer timer(seconds_);
    begin("broadcast", count, type, root);
    if (world_size() > 1 && count > 0) do_broadcast(data, count, type, device, root);
}

void Communicator::barrier() {
    ScopeTimer timer(seconds_);
    begin("barrier", 0, CommType::I64, 0);
    if (world_size() > 1) do_barrier();
}

CollectiveRequest Communicator::all_reduce_sum_start(void* data, int64_t count, CommType type, Device device) {
    ScopeTimer timer(seconds_);
    begin("all_reduce", count, type, 0);
    CollectiveRequest request;
    request.op = current_op_;
    request.bytes = count * int64_t(comm_type_size(type));
    request.started = std::chrono::steady_clock::now();
    if (world_size() > 1 && count > 0) request.handle = do_all_reduce_sum_start(data, count, type, device);
    return request;
}

bool Communicator::test(CollectiveRequest& request) {
    if (!request.pending()) return true;
    ScopeTimer timer(seconds_);
    if (do_test(request.handle)) request.handle = -1;
    return !request.pending();
}

void Communicator::wait(CollectiveRequest& request) {
    if (!request.pending()) return;
    ScopeTimer timer(seconds_);
    do_wait(request, request.started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                           std::chrono::duration<double>(options_.timeout_seconds)));
    request.handle = -1;
}

int64_t Communicator::do_all_reduce_sum_start(void* data, int64_t count, CommType type, Device device) {
    do_all_reduce_sum(data, count, type, device);
    return -1;
}

bool Communicator::do_test(int64_t) { return true; }

void Communicator::do_wait(const CollectiveRequest&, std::chrono::steady_clock::time_point) {}

void Communicator::fail_all_ranks(const std::string& message) {
    std::fprintf(stderr, "strata: rank %d of %d failed: %s\n", rank(), world_size(), message.c_str());
    std::fflush(stderr);
    std::exit(1);
}

// ---- the tensor forms ----

namespace {

CommType checked_comm_type(const Tensor& t, CommType type, const char* op) {
    STRATA_CHECK(t.defined(), "communicator: ", op, " of an undefined tensor");
    STRATA_CHECK(t.is_contiguous(), "communicator: ", op, " needs a contiguous tensor, got strides of shape ",
                 t.shape_string(), "; call contiguous() first (the collective writes in place)");
    bool ok = (type == CommType::F32 && t.dtype() == DType::F32) ||
              (type != CommType::F32 && t.dtype() == DType::I64);
    STRATA_CHECK(ok, "communicator: ", op, " as ", comm_type_name(type), " of a ", dtype_name(t.dtype()),
                 " tensor; F32 travels in F32 tensors, I64 and F64 (doubles) in I64 tensors");
    return type;
}

CommType own_comm_type(const Tensor& t, const char* op) {
    STRATA_CHECK(t.defined() && (t.dtype() == DType::F32 || t.dtype() == DType::I64), "communicator: ", op,
                 " supports F32 and I64 tensors", t.defined() ? str(", got ", dtype_name(t.dtype())) : std::string());
    return t.dtype() == DType::F32 ? CommType::F32 : CommType::I64;
}

// t itself when the backend handles its device, else a host copy (the caller copies results back).
Tensor on_handled_device(Communicator& comm, const Tensor& t) {
    return comm.handles(t.device()) ? t : t.to(kCPU);
}

// For the in-place collectives, which leave the data alone on one rank: no copy then.
Tensor in_place_buffer(Communicator& comm, const Tensor& t) {
    return comm.world_size() == 1 ? t : on_handled_device(comm, t);
}

}  // namespace

void all_reduce_sum(Communicator& comm, const Tensor& t, CommType type) {
    checked_comm_type(t, type, "all_reduce");
    Tensor buf = in_place_buffer(comm, t);
    comm.all_reduce_sum(buf.raw(), t.numel(), type, buf.device());
    if (!buf.is_same(t)) Tensor(t).copy_(buf);
}

void all_reduce_sum(Communicator& comm, const Tensor& t) { all_reduce_sum(comm, t, own_comm_type(t, "all_reduce")); }

Tensor all_gather(Communicator& comm, const Tensor& t, CommType type) {
    checked_comm_type(t, type, "all_gather");
    Tensor send = on_handled_device(comm, t);
    Shape shape = t.shape();
    shape.insert(shape.begin(), comm.world_size());
    Tensor recv = empty(shape, t.dtype(), send.device());
    comm.all_gather(recv.raw(), send.raw(), t.numel(), type, send.device());
    return recv.device() == t.device() ? recv : recv.to(t.device());
}

Tensor all_gather(Communicator& comm, const Tensor& t) { return all_gather(comm, t, own_comm_type(t, "all_gather")); }

void broadcast(Communicator& comm, const Tensor& t, int root) {
    CommType type = own_comm_type(t, "broadcast");
    checked_comm_type(t, type, "broadcast");
    Tensor buf = in_place_buffer(comm, t);
    comm.broadcast(buf.raw(), t.numel(), type, buf.device(), root);
    if (!buf.is_same(t)) Tensor(t).copy_(buf);
}

// ---- the single-process backend ----

namespace {

struct SingleProcessCommunicator : Communicator {
    using Communicator::Communicator;
    int rank() const override { return 0; }
    int world_size() const override { return 1; }
    std::string backend() const override { return "single"; }
    // Never called: the public collectives do all the work for one rank.
    void do_all_reduce_sum(void*, int64_t, CommType, Device) override {}
    void do_all_gather(void*, const void*, int64_t, CommType, Device) override {}
    void do_broadcast(void*, int64_t, CommType, Device, int) override {}
    void do_barrier() override {}
};

}  // namespace

std::shared_ptr<Communicator> make_single_process_communicator(Communicator::Options options) {
    return std::make_shared<SingleProcessCommunicator>(options);
}

// ---- the registry and the world communicator ----

namespace {

std::map<std::string, CommunicatorFactory>& backends() {
    static std::map<std::string, CommunicatorFactory> registry;
    return registry;
}

}  // namespace

CommunicatorRegistrar::CommunicatorRegistrar(const char* name, CommunicatorFactory factory) {
    backends()[name] = std::move(factory);
}

bool has_communicator_backend(const std::string& name) { return backends().count(name) > 0; }

std::shared_ptr<Communicator> make_communicator(const std::string& name, Communicator::Options options,
                                                std::shared_ptr<Communicator> base) {
    auto it = backends().find(name);
    if (it == backends().end()) {
        std::string known;
        for (const auto& [key, factory] : backends()) known += (known.empty() ? "" : ", ") + key;
        STRATA_FAIL("communicator: no backend '", name, "' in this build (registered: ",
                    known.empty() ? "none" : known, ")");
    }
    return it->second(options, std::move(base));
}

bool launched_by_mpirun() {
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
        if (std::getenv(var)) return true;
    return false;
}

Communicator::Options communicator_options_from_env() {
    Communicator::Options options;
    if (const char* timeout = std::getenv("STRATA_COLLECTIVE_TIMEOUT")) {
        char* end = nullptr;
        double seconds = std::strtod(timeout, &end);
        STRATA_CHECK(end != timeout && *end == '\0' && seconds > 0, "STRATA_COLLECTIVE_TIMEOUT must be a number of "
                     "seconds > 0, got '", timeout, "'");
        options.timeout_seconds = seconds;
    }
    if (const char* debug = std::getenv("STRATA_COLLECTIVE_DEBUG"))
        options.check_order = debug[0] != '\0' && std::strcmp(debug, "0") != 0;
    return options;
}

std::shared_ptr<Communicator> world_communicator() {
    static std::mutex mutex;
    static std::shared_ptr<Communicator> world;
    std::lock_guard<std::mutex> lock(mutex);
    if (!world) {
        Communicator::Options options = communicator_options_from_env();
        world = launched_by_mpirun() ? make_communicator("mpi", options) : make_single_process_communicator(options);
    }
    return world;
}

// ---- choosing the backend of data-parallel training ----

std::string choose_data_parallel_backend(const std::string& setting, Device device, int world, bool have_nccl) {
    STRATA_CHECK(setting == "auto" || setting == "mpi" || setting == "nccl", "communicator=", setting,
                 " is not one of auto, mpi, nccl");
    if (world <= 1) return "single";
    const bool cuda = device.type == DeviceType::CUDA;
    if (setting == "nccl") {
        STRATA_CHECK(have_nccl, "communicator=nccl: this build has no NCCL backend (it comes with the CUDA build: "
                     "make CUDA=1, with nvcc); use communicator=mpi or auto");
        STRATA_CHECK(cuda, "communicator=nccl carries GPU tensors, but the device is ", device_name(device),
                     ": set device=cuda (one GPU per rank), or communicator=mpi or auto");
        return "nccl";
    }
    if (setting == "auto" && cuda && have_nccl) return "nccl";
    return "mpi";
}

int local_rank(int rank) {
    for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
        if (const char* v = std::getenv(var); v && *v) return std::atoi(v);
    return rank;
}

std::shared_ptr<Communicator> data_parallel_communicator(const std::string& setting, Device device,
                                                         std::shared_ptr<Communicator> base) {
    const std::string chosen =
        choose_data_parallel_backend(setting, device, base->world_size(), has_communicator_backend("nccl"));
    if (chosen != "nccl") return base;
    return make_communicator("nccl", base->options(), base);
}

Device data_parallel_device(Device configured, const Communicator& comm) {
    if (configured.type != DeviceType::CUDA || comm.world_size() == 1) return configured;
    if (comm.home_device().type == DeviceType::CUDA) return comm.home_device();
    const int count = backend(DeviceType::CUDA).device_count();
    STRATA_CHECK(count > 0, "device=", device_name(configured), ": no usable CUDA device; use device=cpu");
    return Device{DeviceType::CUDA, local_rank(comm.rank()) % count};
}

}  // namespace strata
