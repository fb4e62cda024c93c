// The emulated CUDA host API: device memory, copies, memsets, streams, errors and devices (see runtime.h).
//
// Every check that fails is reported with the caller's file and line (runtime.h's source_location parameters) and
// returns the error CUDA would; the copy or memset is then not done.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "cuda/emu/internal.h"

// Streams carry nothing: every operation is synchronous. A stream is a unique address to check handles against.
struct CUstream_st {
    unsigned flags;
    int device;  // the device current when it was created: kernels launched on it must run with that one current
};

namespace cuemu::detail {

namespace {

struct Allocation {
    size_t bytes;
    int device;
};

struct MemoryTable {
    std::mutex mutex;
    std::map<uintptr_t, Allocation> live;  // base address -> allocation
    std::set<cudaStream_t> streams;
    std::map<const void*, int> max_dynamic_shared;  // kernel -> bytes, from cudaFuncSetAttribute
};

MemoryTable& table() {
    static MemoryTable* t = new MemoryTable();  // never destroyed: memory may be freed during static destruction
    return *t;
}

// The allocation that contains ptr, if any (call with the mutex held).
const std::pair<const uintptr_t, Allocation>* find_locked(MemoryTable& t, const void* ptr) {
    uintptr_t p = uintptr_t(ptr);
    auto it = t.live.upper_bound(p);
    if (it == t.live.begin()) return nullptr;
    --it;
    if (p >= it->first + std::max<size_t>(it->second.bytes, 1)) return nullptr;
    return &*it;
}

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local cudaError_t t_sync_error = cudaSuccess;  // a failed launch, returned by the next synchronize
thread_local int t_device = 0;

cudaError_t fail(cudaError_t error) {
    t_last_error = error;
    return error;
}

const char* kind_name(cudaMemcpyKind kind) {
    switch (kind) {
        case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
        case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
        case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
        case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
        case cudaMemcpyDefault: return "cudaMemcpyDefault";
    }
    return "an invalid cudaMemcpyKind";
}

std::string pointer_str(const void* p) {
    return hex(uint64_t(uintptr_t(p)));
}

// One side of a copy: checks that `ptr` is what `kind` says it is.
bool check_side(const char* api, const char* what, const void* ptr, size_t bytes, bool device, cudaMemcpyKind kind,
                const std::source_location& where) {
    if (device) return check_device_range(api, what, ptr, bytes, where);
    if (is_device_pointer(ptr)) {
        report_host(Severity::Error, where,
                    std::string(api) + ": " + what + " " + pointer_str(ptr) + " is device memory, but the kind " +
                        kind_name(kind) + " says it is host memory");
        return false;
    }
    return true;
}

cudaError_t copy(const char* api, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                 const std::source_location& where) {
    if (bytes == 0) return cudaSuccess;
    if (!dst || !src) {
        report_host(Severity::Error, where, std::string(api) + ": " + (dst ? "src" : "dst") + " is a null pointer");
        return fail(cudaErrorInvalidValue);
    }
    bool dst_device = false, src_device = false;
    switch (kind) {
        case cudaMemcpyHostToHost: break;
        case cudaMemcpyHostToDevice: dst_device = true; break;
        case cudaMemcpyDeviceToHost: src_device = true; break;
        case cudaMemcpyDeviceToDevice: dst_device = src_device = true; break;
        case cudaMemcpyDefault:
            dst_device = is_device_pointer(dst);
            src_device = is_device_pointer(src);
            break;
        default:
            report_host(Severity::Error, where,
                        std::string(api) + ": invalid cudaMemcpyKind " + std::to_string(int(kind)));
            return fail(cudaErrorInvalidMemcpyDirection);
    }
    if (!check_side(api, "dst", dst, bytes, dst_device, kind, where) ||
        !check_side(api, "src", src, bytes, src_device, kind, where))
        return fail(cudaErrorInvalidValue);
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t set(const char* api, void* ptr, int value, size_t bytes, const std::source_location& where) {
    if (bytes == 0) return cudaSuccess;
    if (!check_device_range(api, "ptr", ptr, bytes, where)) return fail(cudaErrorInvalidValue);
    std::memset(ptr, value, bytes);
    return cudaSuccess;
}

}  // namespace

bool is_device_pointer(const void* ptr) {
    MemoryTable& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    return find_locked(t, ptr) != nullptr;
}

bool check_device_range(const char* api, const char* what, const void* ptr, size_t bytes,
                        const std::source_location& where) {
    std::string problem;
    if (!ptr) {
        problem = "is a null pointer";
    } else {
        MemoryTable& t = table();
        std::lock_guard<std::mutex> lock(t.mutex);
        auto* a = find_locked(t, ptr);
        if (!a) {
            problem = pointer_str(ptr) + " is not device memory (no live cudaMalloc allocation contains it)";
        } else {
            size_t offset = uintptr_t(ptr) - a->first;
            if (offset + bytes > a->second.bytes)
                problem = "needs " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                          " of a cudaMalloc allocation of " + std::to_string(a->second.bytes) + " bytes";
        }
    }
    if (problem.empty()) return true;
    report_host(Severity::Error, where, std::string(api) + ": " + what + " " + problem);
    return false;
}

void set_last_error(cudaError_t error) {
    t_last_error = error;
}

void set_launch_failed() {
    t_last_error = cudaErrorLaunchFailure;
    t_sync_error = cudaErrorLaunchFailure;
}

bool is_valid_stream(cudaStream_t stream) {
    if (!stream) return true;
    MemoryTable& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    return t.streams.count(stream) != 0;
}

int current_device() {
    return t_device;
}

int device_of_pointer(const void* ptr) {
    MemoryTable& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    auto* a = find_locked(t, ptr);
    return a ? a->second.device : -1;
}

int device_of_stream(cudaStream_t stream) {
    return stream ? stream->device : t_device;
}

int max_dynamic_shared(const void* kernel) {
    MemoryTable& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    auto it = t.max_dynamic_shared.find(kernel);
    return it == t.max_dynamic_shared.end() ? 48 * 1024 : it->second;
}

}  // namespace cuemu::detail

using namespace cuemu::detail;

cudaError_t cudaMalloc(void** ptr, size_t nbytes, cuemu_where where) {
    if (!ptr) {
        report_host(Severity::Error, where, "cudaMalloc: the output pointer is null");
        return fail(cudaErrorInvalidValue);
    }
    *ptr = nullptr;
    if (nbytes == 0) return cudaSuccess;
    // Exactly nbytes (a GPU rounds up; we do not, so that ASan and valgrind see the first byte past the end).
    void* p = nullptr;
    if (posix_memalign(&p, 256, nbytes) != 0) return fail(cudaErrorMemoryAllocation);
    if (cuemu::settings().poison) std::memset(p, 0xFF, nbytes);
    {
        MemoryTable& t = table();
        std::lock_guard<std::mutex> lock(t.mutex);
        t.live[uintptr_t(p)] = Allocation{nbytes, t_device};
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void* ptr, cuemu_where where) {
    if (!ptr) return cudaSuccess;
    {
        MemoryTable& t = table();
        std::lock_guard<std::mutex> lock(t.mutex);
        auto it = t.live.find(uintptr_t(ptr));
        if (it == t.live.end()) {
            bool inside = find_locked(t, ptr) != nullptr;
            report_host(Severity::Error, where,
                        "cudaFree: " + pointer_str(ptr) +
                            (inside ? " points inside an allocation, not at its start"
                                    : " is not a live cudaMalloc allocation (never allocated, or freed already)"));
            return fail(cudaErrorInvalidValue);
        }
        t.live.erase(it);
    }
    std::free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t nbytes, cuemu_where where) {
    if (!ptr) {
        report_host(Severity::Error, where, "cudaMallocHost: the output pointer is null");
        return fail(cudaErrorInvalidValue);
    }
    *ptr = nbytes ? std::malloc(nbytes) : nullptr;
    return nbytes && !*ptr ? fail(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr, cuemu_where where) {
    if (ptr && is_device_pointer(ptr)) {
        report_host(Severity::Error, where, "cudaFreeHost: " + pointer_str(ptr) + " is device memory; use cudaFree");
        return fail(cudaErrorInvalidValue);
    }
    std::free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t nbytes, cudaMemcpyKind kind, cuemu_where where) {
    return copy("cudaMemcpy", dst, src, nbytes, kind, where);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t nbytes, cudaMemcpyKind kind, cudaStream_t stream,
                            cuemu_where where) {
    if (!is_valid_stream(stream)) {
        report_host(Severity::Error, where, "cudaMemcpyAsync: the stream is not one cudaStreamCreate returned");
        return fail(cudaErrorInvalidResourceHandle);
    }
    return copy("cudaMemcpyAsync", dst, src, nbytes, kind, where);
}

cudaError_t cudaMemset(void* ptr, int value, size_t nbytes, cuemu_where where) {
    return set("cudaMemset", ptr, value, nbytes, where);
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t nbytes, cudaStream_t stream, cuemu_where where) {
    if (!is_valid_stream(stream)) {
        report_host(Severity::Error, where, "cudaMemsetAsync: the stream is not one cudaStreamCreate returned");
        return fail(cudaErrorInvalidResourceHandle);
    }
    return set("cudaMemsetAsync", ptr, value, nbytes, where);
}


cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags, cuemu_where where) {
    if (!stream) {
        report_host(Severity::Error, where, "cudaStreamCreate: the output pointer is null");
        return fail(cudaErrorInvalidValue);
    }
    *stream = new CUstream_st{flags, t_device};
    MemoryTable& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    t.streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream, cuemu_where where) {
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault, where);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream, cuemu_where where) {
    {
        MemoryTable& t = table();
        std::lock_guard<std::mutex> lock(t.mutex);
        if (!stream || !t.streams.erase(stream)) {
            report_host(Severity::Error, where, "cudaStreamDestroy: not a live stream");
            return fail(cudaErrorInvalidResourceHandle);
        }
    }
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream, cuemu_where where) {
    if (!is_valid_stream(stream)) {
        report_host(Severity::Error, where, "cudaStreamSynchronize: not a live stream");
        return fail(cudaErrorInvalidResourceHandle);
    }
    return cudaDeviceSynchronize();
}

cudaError_t cudaStreamQuery(cudaStream_t stream, cuemu_where where) { return cudaStreamSynchronize(stream, where); }

// ---- events ----

struct CUevent_st {
    unsigned flags;
    int device;  // current when it was created: it may only be recorded on that device's streams
};

namespace {

std::mutex g_event_mutex;
std::set<cudaEvent_t>& live_events() {
    static std::set<cudaEvent_t>* events = new std::set<cudaEvent_t>();  // never destroyed, as the memory table
    return *events;
}

bool is_live_event(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(g_event_mutex);
    return event && live_events().count(event) != 0;
}

}  // namespace

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags, cuemu_where where) {
    if (!event) {
        report_host(Severity::Error, where, "cudaEventCreate: the output pointer is null");
        return fail(cudaErrorInvalidValue);
    }
    *event = new CUevent_st{flags, t_device};
    std::lock_guard<std::mutex> lock(g_event_mutex);
    live_events().insert(*event);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event, cuemu_where where) {
    return cudaEventCreateWithFlags(event, cudaEventDefault, where);
}

cudaError_t cudaEventDestroy(cudaEvent_t event, cuemu_where where) {
    {
        std::lock_guard<std::mutex> lock(g_event_mutex);
        if (!event || !live_events().erase(event)) {
            report_host(Severity::Error, where, "cudaEventDestroy: not a live event");
            return fail(cudaErrorInvalidResourceHandle);
        }
    }
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream, cuemu_where where) {
    if (!is_live_event(event) || !is_valid_stream(stream)) {
        report_host(Severity::Error, where, "cudaEventRecord: not a live event and stream");
        return fail(cudaErrorInvalidResourceHandle);
    }
    if (device_of_stream(stream) != event->device) {
        report_host(Severity::Error, where,
                    "cudaEventRecord: the event was created on device " + std::to_string(event->device) +
                        ", the stream belongs to device " + std::to_string(device_of_stream(stream)));
        return fail(cudaErrorInvalidResourceHandle);
    }
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event, cuemu_where where) {
    if (!is_live_event(event)) {
        report_host(Severity::Error, where, "cudaEventQuery: not a live event");
        return fail(cudaErrorInvalidResourceHandle);
    }
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event, cuemu_where where) { return cudaEventQuery(event, where); }

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned, cuemu_where where) {
    if (!is_live_event(event) || !is_valid_stream(stream)) {
        report_host(Severity::Error, where, "cudaStreamWaitEvent: not a live stream and event");
        return fail(cudaErrorInvalidResourceHandle);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    cudaError_t e = t_sync_error;
    t_sync_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetLastError() {
    cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() {
    return t_last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInitializationError: return "cudaErrorInitializationError";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInitializationError: return "initialization error";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return fail(cudaErrorInvalidValue);
    *count = cuemu::settings().devices;
    return *count > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device, cuemu_where where) {
    int n = cuemu::settings().devices;
    if (device < 0 || device >= n) {
        report_host(Severity::Error, where,
                    "cudaSetDevice(" + std::to_string(device) + "): there are " + std::to_string(n) +
                        " emulated device(s) (CUEMU_DEVICES)");
        return fail(cudaErrorInvalidDevice);
    }
    t_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    if (!device) return fail(cudaErrorInvalidValue);
    *device = t_device;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
    if (!version) return fail(cudaErrorInvalidValue);
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
    if (!version) return fail(cudaErrorInvalidValue);
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cuemu_func_set_attribute(const void* func, cudaFuncAttribute attr, int value, cuemu_where where) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
        report_host(Severity::Error, where,
                    "cudaFuncSetAttribute: only cudaFuncAttributeMaxDynamicSharedMemorySize is emulated");
        return fail(cudaErrorInvalidValue);
    }
    if (value < 0 || value > 227 * 1024) {
        report_host(Severity::Error, where,
                    "cudaFuncSetAttribute: " + std::to_string(value) +
                        " bytes of dynamic shared memory; at most 227 KiB");
        return fail(cudaErrorInvalidValue);
    }
    MemoryTable& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    t.max_dynamic_shared[func] = value;
    return cudaSuccess;
}
