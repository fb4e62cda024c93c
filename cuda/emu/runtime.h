// The emulated CUDA runtime, host side: the types of <cuda_runtime.h> that Strata uses, the host API subset
// (memory, copies, streams, errors, devices) and the emulator's own control API (namespace cuemu).
//
// Only included through cuda/emu/cuemu.h with -DCUEMU. Device memory is host memory: cudaMalloc returns exactly
// the bytes asked for (no rounding up, so ASan and valgrind see any access past the end), filled with 0xFF bytes
// (a float NaN), and remembers every allocation so that copies, memsets and the library stand-ins can check that a
// pointer really is device memory and that a copy's direction is right. Every call is synchronous: a copy or a
// launch has finished when it returns; streams exist only so that code written for the GPU compiles.
//
// NOTE: the host functions take a defaulted std::source_location as their last parameter, so that a wrong call
// is reported at the caller's file and line. Callers never pass it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <string>
#include <vector>

// ---- index and vector types (as in CUDA's vector_types.h) ----

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

struct alignas(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) double2 { double x, y; };

inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

// ---- errors, copy kinds, streams (the numeric values are CUDA's) ----

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamDefault = 0;
constexpr unsigned cudaStreamNonBlocking = 1;

// ---- host API ----

using cuemu_where = std::source_location;
#define CUEMU_HERE_DEFAULT cuemu_where where = cuemu_where::current()

cudaError_t cudaMalloc(void** ptr, size_t nbytes, CUEMU_HERE_DEFAULT);
template <typename T>
cudaError_t cudaMalloc(T** ptr, size_t nbytes, CUEMU_HERE_DEFAULT) {
    return cudaMalloc(reinterpret_cast<void**>(ptr), nbytes, where);
}
cudaError_t cudaFree(void* ptr, CUEMU_HERE_DEFAULT);
cudaError_t cudaMallocHost(void** ptr, size_t nbytes, CUEMU_HERE_DEFAULT);
cudaError_t cudaFreeHost(void* ptr, CUEMU_HERE_DEFAULT);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t nbytes, cudaMemcpyKind kind, CUEMU_HERE_DEFAULT);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t nbytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr, CUEMU_HERE_DEFAULT);
cudaError_t cudaMemset(void* ptr, int value, size_t nbytes, CUEMU_HERE_DEFAULT);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t nbytes, cudaStream_t stream = nullptr, CUEMU_HERE_DEFAULT);

cudaError_t cudaStreamCreate(cudaStream_t* stream, CUEMU_HERE_DEFAULT);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags, CUEMU_HERE_DEFAULT);
cudaError_t cudaStreamDestroy(cudaStream_t stream, CUEMU_HERE_DEFAULT);
cudaError_t cudaStreamSynchronize(cudaStream_t stream, CUEMU_HERE_DEFAULT);
// Work runs when it is issued here, so a live stream is always complete: cudaStreamSynchronize's result.
cudaError_t cudaStreamQuery(cudaStream_t stream, CUEMU_HERE_DEFAULT);

// Events mark a point in a stream. Work is done when it is issued, so a recorded event is always complete
// (cudaEventQuery returns cudaSuccess) and cudaStreamWaitEvent has nothing to wait for; the handles are checked
// (live, recorded on a live stream of the event's device) as CUDA would.
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
constexpr unsigned cudaEventDefault = 0;
constexpr unsigned cudaEventDisableTiming = 2;
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags, CUEMU_HERE_DEFAULT);
cudaError_t cudaEventCreate(cudaEvent_t* event, CUEMU_HERE_DEFAULT);
cudaError_t cudaEventDestroy(cudaEvent_t event, CUEMU_HERE_DEFAULT);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr, CUEMU_HERE_DEFAULT);
cudaError_t cudaEventQuery(cudaEvent_t event, CUEMU_HERE_DEFAULT);
cudaError_t cudaEventSynchronize(cudaEvent_t event, CUEMU_HERE_DEFAULT);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0, CUEMU_HERE_DEFAULT);

cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();   // returns and clears this host thread's last error
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);

cudaError_t cudaGetDeviceCount(int* count);  // CUEMU_DEVICES (default 1); all devices share host memory
cudaError_t cudaSetDevice(int device, CUEMU_HERE_DEFAULT);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);

// Raising a kernel's dynamic shared memory limit above 48 KiB (needed on a GPU; the emulator remembers it so that
// it does not warn for that kernel).
cudaError_t cuemu_func_set_attribute(const void* func, cudaFuncAttribute attr, int value, cuemu_where where);
template <typename F>
cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value, CUEMU_HERE_DEFAULT) {
    return cuemu_func_set_attribute(reinterpret_cast<const void*>(func), attr, value, where);
}

// ---- the emulator's control API (emulated builds only: guard uses with #ifdef CUEMU) ----

namespace cuemu {

enum class Order { Forward, Reverse, Random };

// Run-time settings. Read from the environment on first use; tests may change them between launches.
struct Settings {
    Order order = Order::Forward;      // CUEMU_ORDER=forward|reverse|random: the order Ready threads resume in
    uint64_t seed = 1;                 // CUEMU_SEED: seeds the random order (per launch and block: reproducible)
    bool strict = true;                // CUEMU_STRICT=1|0: report divergent __syncthreads
    size_t stack_bytes = 64 * 1024;    // CUEMU_STACK: each GPU thread's fiber stack
    bool poison = true;                // CUEMU_POISON=1|0: 0xFF fill of cudaMalloc and dynamic shared memory
    int devices = 1;                   // CUEMU_DEVICES: what cudaGetDeviceCount reports
};
Settings& settings();
const char* order_name(Order order);

// Every problem the emulator finds is a report: printed to stderr as
//   cuemu error: <file>:<line>: kernel <name>, block (x,y,z), thread (x,y,z): <what>
// (host calls say "host" instead of kernel/block/thread) and counted. Tests assert that error_count() is 0.
int error_count();
int warning_count();
std::vector<std::string> reports();  // the messages since the last clear_reports()
void clear_reports();                // clears the messages and both counts

// For tests that expect reports: while one exists, reports are collected but not printed.
struct CaptureReports {
    CaptureReports();
    ~CaptureReports();
    CaptureReports(const CaptureReports&) = delete;
    CaptureReports& operator=(const CaptureReports&) = delete;
    int errors() const { return error_count(); }
    int warnings() const { return warning_count(); }
    bool contains(const std::string& text) const;  // some report contains `text`
    std::string all() const;                       // every report, one per line (for failure messages)
};

// Statistics of the emulator's work since the process started (for docs and benchmarks).
struct Stats {
    uint64_t launches = 0, blocks = 0, threads = 0, switches = 0;
};
Stats stats();

}  // namespace cuemu
