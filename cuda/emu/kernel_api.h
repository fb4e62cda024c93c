// The emulated CUDA runtime, device side: what a kernel can use, and the launch macro.
//
// Only included through cuda/emu/cuemu.h with -DCUEMU. How the pieces map onto the CPU (docs/cuda.md):
//   - a launch runs its blocks one at a time, in linear block order; each GPU thread of the current block is a
//     fiber with its own stack, resumed by a scheduler in the order CUEMU_ORDER asks for;
//   - threadIdx/blockIdx/blockDim/gridDim read the current fiber's coordinates;
//   - __shared__ variables are function-local statics: one instance, reused by each block in turn. Dynamic shared
//     memory is one buffer per launch, refilled with 0xFF bytes before each block (it is uninitialised on a GPU);
//   - a fiber runs without interruption until it reaches a barrier or a warp operation, or exits. __syncthreads
//     completes when every thread of the block has arrived or exited; a warp operation completes when every
//     non-exited lane named in its mask has reached an operation with the same mask (PTX's shfl.sync rule);
//   - atomics are real atomic read-modify-writes on host memory, so ThreadSanitizer sees them as atomics.
//
// Barriers and warp operations take a defaulted std::source_location, so that a divergent barrier or a bad
// shuffle is reported at the kernel's own line. Kernels never pass it.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>
#include <source_location>
#include <tuple>
#include <type_traits>

#include "cuda/emu/runtime.h"

// ---- qualifiers ----

#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))

constexpr int warpSize = 32;

namespace cuemu::detail {

// The coordinates of the GPU thread that is running now (the scheduler points g_coords at them on each switch).
struct Coords {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};
extern const Coords* g_coords;

enum class BarrierKind { Plain, Count, And, Or };
// Waits at __syncthreads[_count|_and|_or]; returns the block-wide reduction of `predicate` for the variants.
int block_barrier(BarrierKind kind, int predicate, const std::source_location& where);

// One lane's part in a warp operation. `src_lane` is the lane whose value this lane receives (a shuffle's own lane
// when CUDA returns the caller's value); `gather` asks for every member's value (votes, match, reduce).
struct WarpRequest {
    const char* name;
    unsigned mask;
    uint64_t value;
    int src_lane;
    int width;
    bool gather;
};
struct WarpResult {
    uint64_t value;          // the value of src_lane
    unsigned members;        // the lanes that took part (those of the mask that had not exited)
    const uint64_t* values;  // with gather: every lane's value, indexed by lane (valid for members only)
};
WarpResult warp_op(const WarpRequest& request, const std::source_location& where);

int lane_id();             // of the calling GPU thread
unsigned active_mask();    // the warp's lanes that have not exited (an approximation of __activemask)
void* dynamic_shared();    // the launch's dynamic shared memory

template <typename T>
uint64_t to_bits(T value) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp operations move values of up to 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
}
template <typename T>
T from_bits(uint64_t bits) {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}

// The bounds of the calling lane's shuffle segment: CUDA splits the warp into groups of `width` lanes.
inline int segment_start(int lane, int width) {
    return width >= 1 && width <= 32 && (width & (width - 1)) == 0 ? lane & ~(width - 1) : 0;
}
inline int segment_width(int width) {
    return width >= 1 && width <= 32 && (width & (width - 1)) == 0 ? width : 32;
}

}  // namespace cuemu::detail

#define threadIdx (::cuemu::detail::g_coords->thread_idx)
#define blockIdx (::cuemu::detail::g_coords->block_idx)
#define blockDim (::cuemu::detail::g_coords->block_dim)
#define gridDim (::cuemu::detail::g_coords->grid_dim)

#define CUEMU_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::cuemu::detail::dynamic_shared())

// ---- barriers ----

inline void __syncthreads(CUEMU_HERE_DEFAULT) {
    cuemu::detail::block_barrier(cuemu::detail::BarrierKind::Plain, 1, where);
}
inline int __syncthreads_count(int predicate, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::block_barrier(cuemu::detail::BarrierKind::Count, predicate, where);
}
inline int __syncthreads_and(int predicate, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::block_barrier(cuemu::detail::BarrierKind::And, predicate, where);
}
inline int __syncthreads_or(int predicate, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::block_barrier(cuemu::detail::BarrierKind::Or, predicate, where);
}

// ---- warp operations ----

inline void __syncwarp(unsigned mask = 0xffffffffu, CUEMU_HERE_DEFAULT) {
    int lane = cuemu::detail::lane_id();
    cuemu::detail::warp_op({"__syncwarp", mask, 0, lane, 32, false}, where);
}

inline unsigned __activemask() { return cuemu::detail::active_mask(); }

// Lane srcLane of the caller's segment of `width` lanes.
template <typename T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize,
              CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    int lane = lane_id();
    int src = segment_start(lane, width) + (srcLane & (segment_width(width) - 1));
    return from_bits<T>(warp_op({"__shfl_sync", mask, to_bits(var), src, width, false}, where).value);
}

// Lane (lane - delta); lanes below delta within their segment keep their own value.
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    int lane = lane_id();
    int in_segment = lane - segment_start(lane, width);
    int src = in_segment >= int(delta) ? lane - int(delta) : lane;
    return from_bits<T>(warp_op({"__shfl_up_sync", mask, to_bits(var), src, width, false}, where).value);
}

// Lane (lane + delta); lanes whose source would leave their segment keep their own value.
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    int lane = lane_id();
    int in_segment = lane - segment_start(lane, width);
    int src = in_segment + int(delta) < segment_width(width) ? lane + int(delta) : lane;
    return from_bits<T>(warp_op({"__shfl_down_sync", mask, to_bits(var), src, width, false}, where).value);
}

// Lane (lane ^ laneMask); a source in a later segment gives the caller's own value (CUDA's rule).
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize,
                  CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    int lane = lane_id();
    int src = (lane ^ laneMask) & 31;
    if (src >= segment_start(lane, width) + segment_width(width)) src = lane;
    return from_bits<T>(warp_op({"__shfl_xor_sync", mask, to_bits(var), src, width, false}, where).value);
}

inline unsigned __ballot_sync(unsigned mask, int predicate,
                              CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    WarpResult r = warp_op({"__ballot_sync", mask, uint64_t(predicate != 0), lane_id(), 32, true}, where);
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l)
        if ((r.members >> l & 1u) && r.values[l]) ballot |= 1u << l;
    return ballot;
}

inline int __any_sync(unsigned mask, int predicate, CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    WarpResult r = warp_op({"__any_sync", mask, uint64_t(predicate != 0), lane_id(), 32, true}, where);
    for (int l = 0; l < 32; ++l)
        if ((r.members >> l & 1u) && r.values[l]) return 1;
    return 0;
}

inline int __all_sync(unsigned mask, int predicate, CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    WarpResult r = warp_op({"__all_sync", mask, uint64_t(predicate != 0), lane_id(), 32, true}, where);
    for (int l = 0; l < 32; ++l)
        if ((r.members >> l & 1u) && !r.values[l]) return 0;
    return 1;
}

// The lanes of the mask whose `value` equals the caller's.
template <typename T>
unsigned __match_any_sync(unsigned mask, T value, CUEMU_HERE_DEFAULT) {
    using namespace cuemu::detail;
    WarpResult r = warp_op({"__match_any_sync", mask, to_bits(value), lane_id(), 32, true}, where);
    unsigned same = 0;
    for (int l = 0; l < 32; ++l)
        if ((r.members >> l & 1u) && r.values[l] == to_bits(value)) same |= 1u << l;
    return same;
}

// __reduce_{add,min,max}_sync over int or unsigned, __reduce_{and,or,xor}_sync over unsigned (sm_80).
namespace cuemu::detail {
template <typename T, typename Op>
T warp_reduce(const char* name, unsigned mask, T value, Op op, const std::source_location& where) {
    WarpResult r = warp_op({name, mask, to_bits(value), lane_id(), 32, true}, where);
    bool first = true;
    T acc{};
    for (int l = 0; l < 32; ++l) {
        if (!(r.members >> l & 1u)) continue;
        T v = from_bits<T>(r.values[l]);
        acc = first ? v : op(acc, v);
        first = false;
    }
    return acc;
}
}  // namespace cuemu::detail

namespace cuemu::detail {
template <typename T> T sum_of(T a, T b) { return a + b; }
template <typename T> T min_of(T a, T b) { return a < b ? a : b; }
template <typename T> T max_of(T a, T b) { return a > b ? a : b; }
inline unsigned and_of(unsigned a, unsigned b) { return a & b; }
inline unsigned or_of(unsigned a, unsigned b) { return a | b; }
inline unsigned xor_of(unsigned a, unsigned b) { return a ^ b; }
}  // namespace cuemu::detail

inline unsigned __reduce_add_sync(unsigned mask, unsigned v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_add_sync", mask, v, cuemu::detail::sum_of<unsigned>, where);
}
inline int __reduce_add_sync(unsigned mask, int v, CUEMU_HERE_DEFAULT) {
    return int(__reduce_add_sync(mask, unsigned(v), where));  // wrap-around addition, as on the GPU
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_min_sync", mask, v, cuemu::detail::min_of<unsigned>, where);
}
inline int __reduce_min_sync(unsigned mask, int v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_min_sync", mask, v, cuemu::detail::min_of<int>, where);
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_max_sync", mask, v, cuemu::detail::max_of<unsigned>, where);
}
inline int __reduce_max_sync(unsigned mask, int v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_max_sync", mask, v, cuemu::detail::max_of<int>, where);
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_and_sync", mask, v, cuemu::detail::and_of, where);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_or_sync", mask, v, cuemu::detail::or_of, where);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, CUEMU_HERE_DEFAULT) {
    return cuemu::detail::warp_reduce("__reduce_xor_sync", mask, v, cuemu::detail::xor_of, where);
}

// ---- atomics (relaxed read-modify-writes, as CUDA's; the overloads CUDA has) ----

namespace cuemu::detail {
// new = op(old) by compare-and-swap on the value's bits; returns the old value.
template <typename T, typename Bits, typename Op>
T atomic_update(T* address, Op op) {
    static_assert(sizeof(T) == sizeof(Bits));
    Bits* bits = reinterpret_cast<Bits*>(address);
    Bits old_bits = __atomic_load_n(bits, __ATOMIC_RELAXED);
    for (;;) {
        T old_value;
        std::memcpy(&old_value, &old_bits, sizeof(T));
        T new_value = op(old_value);
        Bits new_bits;
        std::memcpy(&new_bits, &new_value, sizeof(T));
        if (__atomic_compare_exchange_n(bits, &old_bits, new_bits, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return old_value;
    }
}
}  // namespace cuemu::detail

inline int atomicAdd(int* a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* a, float v) {
    return cuemu::detail::atomic_update<float, uint32_t>(a, [v](float old) { return old + v; });
}
inline double atomicAdd(double* a, double v) {
    return cuemu::detail::atomic_update<double, uint64_t>(a, [v](double old) { return old + v; });
}
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned* a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }

inline int atomicExch(int* a, int v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicExch(unsigned* a, unsigned v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicExch(unsigned long long* a, unsigned long long v) {
    return __atomic_exchange_n(a, v, __ATOMIC_RELAXED);
}
inline float atomicExch(float* a, float v) {
    return cuemu::detail::atomic_update<float, uint32_t>(a, [v](float) { return v; });
}

#define CUEMU_ATOMIC_MIN_MAX(T)                                                                              \
    inline T atomicMin(T* a, T v) {                                                                           \
        return cuemu::detail::atomic_update<T, T>(a, [v](T old) { return v < old ? v : old; });              \
    }                                                                                                         \
    inline T atomicMax(T* a, T v) {                                                                           \
        return cuemu::detail::atomic_update<T, T>(a, [v](T old) { return v > old ? v : old; });              \
    }
CUEMU_ATOMIC_MIN_MAX(int)
CUEMU_ATOMIC_MIN_MAX(unsigned)
CUEMU_ATOMIC_MIN_MAX(long long)
CUEMU_ATOMIC_MIN_MAX(unsigned long long)
#undef CUEMU_ATOMIC_MIN_MAX

inline int atomicCAS(int* a, int compare, int v) {
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;  // the old value, whether or not the swap happened
}
inline unsigned atomicCAS(unsigned* a, unsigned compare, unsigned v) {
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long compare, unsigned long long v) {
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}

inline int atomicAnd(int* a, int v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicAnd(unsigned* a, unsigned v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAnd(unsigned long long* a, unsigned long long v) {
    return __atomic_fetch_and(a, v, __ATOMIC_RELAXED);
}
inline int atomicOr(int* a, int v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicOr(unsigned* a, unsigned v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicOr(unsigned long long* a, unsigned long long v) {
    return __atomic_fetch_or(a, v, __ATOMIC_RELAXED);
}
inline int atomicXor(int* a, int v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicXor(unsigned* a, unsigned v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicXor(unsigned long long* a, unsigned long long v) {
    return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED);
}
// old >= limit ? 0 : old + 1
inline unsigned atomicInc(unsigned* a, unsigned limit) {
    auto inc = [limit](unsigned old) { return old >= limit ? 0u : old + 1; };
    return cuemu::detail::atomic_update<unsigned, unsigned>(a, inc);
}
// (old == 0 || old > limit) ? limit : old - 1
inline unsigned atomicDec(unsigned* a, unsigned limit) {
    auto dec = [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1; };
    return cuemu::detail::atomic_update<unsigned, unsigned>(a, dec);
}

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- math and bit intrinsics (host math: exact where the GPU's fast versions are approximate) ----

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }

inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline int __float2int_rz(float x) { return int(truncf(x)); }
inline int __float2int_rd(float x) { return int(floorf(x)); }
inline int __float2int_ru(float x) { return int(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return unsigned(nearbyintf(x)); }
inline float __int2float_rn(int x) { return float(x); }
inline int __float_as_int(float x) { return cuemu::detail::from_bits<int>(cuemu::detail::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return cuemu::detail::from_bits<unsigned>(cuemu::detail::to_bits(x)); }
inline float __int_as_float(int x) { return cuemu::detail::from_bits<float>(cuemu::detail::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return cuemu::detail::from_bits<float>(cuemu::detail::to_bits(x)); }
inline long long __double_as_longlong(double x) {
    return cuemu::detail::from_bits<long long>(cuemu::detail::to_bits(x));
}
inline double __longlong_as_double(long long x) { return cuemu::detail::from_bits<double>(cuemu::detail::to_bits(x)); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline int __mul24(int x, int y) { return int((long long)(x << 8 >> 8) * (y << 8 >> 8)); }
inline unsigned __umul24(unsigned x, unsigned y) { return (x & 0xffffffu) * (y & 0xffffffu); }
inline int __mulhi(int x, int y) { return int(((long long)x * y) >> 32); }
inline unsigned __umulhi(unsigned x, unsigned y) { return unsigned(((unsigned long long)x * y) >> 32); }

template <typename T>
T __ldg(const T* p) {
    return *p;
}

// CUDA's min/max overloads; with a signed and an unsigned argument the unsigned type wins, as in CUDA.
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned min(int a, unsigned b) { return min(unsigned(a), b); }
inline unsigned min(unsigned a, int b) { return min(a, unsigned(b)); }
inline long min(long a, long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned max(int a, unsigned b) { return max(unsigned(a), b); }
inline unsigned max(unsigned a, int b) { return max(a, unsigned(b)); }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// ---- launching ----

namespace cuemu::detail {

struct LaunchInfo {
    const char* kernel_name;
    const void* kernel_id;  // the kernel's address (for cudaFuncSetAttribute)
    const char* file;
    int line;
    dim3 grid, block;
    size_t smem_bytes;
    cudaStream_t stream;
    void (*run)(void* context);  // runs the kernel body once, for the current GPU thread
    void* context;
    // The kernel's pointer arguments (not pointers inside struct arguments): device memory among them must belong
    // to the current device, the one the launch runs on.
    const void* const* pointers;
    int num_pointers;
};
// Runs the whole grid before returning; problems are reported and make cudaDeviceSynchronize fail.
void launch(const LaunchInfo& info);

template <typename T>
void note_pointer(const void** pointers, int& n, const T& value) {
    if constexpr (std::is_pointer_v<T>) pointers[n++] = static_cast<const void*>(value);
}

// Converts the arguments to the kernel's parameter types once, as a launch does, and gives each GPU thread its
// own copy of them (std::apply passes copies of the stored parameters to the by-value kernel parameters).
template <typename... Params, typename... Args>
void launch_kernel(const char* name, const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block,
                   size_t smem_bytes, cudaStream_t stream, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "CUEMU_LAUNCH: wrong number of kernel arguments");
    using Stored = std::tuple<std::decay_t<Params>...>;
    Stored stored(std::forward<Args>(args)...);
    struct Context {
        void (*kernel)(Params...);
        Stored* params;
    } context{kernel, &stored};
    const void* pointers[sizeof...(Params) + 1] = {};
    int num_pointers = 0;
    std::apply([&](const auto&... p) { (note_pointer(pointers, num_pointers, p), ...); }, stored);
    LaunchInfo info{name, reinterpret_cast<const void*>(kernel), file, line, grid, block, smem_bytes, stream,
                    [](void* c) {
                        Context* ctx = static_cast<Context*>(c);
                        std::apply(ctx->kernel, *ctx->params);
                    },
                    &context, pointers, num_pointers};
    launch(info);
}

}  // namespace cuemu::detail

#define CUEMU_LAUNCH(kernel, grid, block, smem, stream, ...)                                              \
    ::cuemu::detail::launch_kernel(#kernel, __FILE__, __LINE__, kernel, grid, block, smem, stream           \
                                   __VA_OPT__(, ) __VA_ARGS__)
