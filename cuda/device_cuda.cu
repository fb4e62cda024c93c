// The CUDA device backend: DeviceBackend for DeviceType::CUDA (framework/device.h). Device memory comes from a
// caching allocator; copies, memsets and kernels of a device all go on that device's one stream.
//
// Caching allocator. cudaMalloc is slow and cudaFree synchronizes the whole device, while a training step
// allocates the same activation sizes every iteration. So a freed block goes to a free list per (device, size
// bucket) and is handed out again for the next request of that bucket, without a cudaFree. Sizes are rounded up
// to 512 bytes below 1 MiB and to 1/8 of the next power of two above it (at most 12.5% waste). When cudaMalloc
// runs out of memory, the device's cached blocks are given back and the allocation is tried once more.
// Handing a block out again without synchronizing is safe because a device's work is ordered on its one stream:
// every kernel that used the block before it was freed runs before any kernel issued after it is reused.
//
// Copies: host to device and device to device are queued on the stream (cudaMemcpyAsync from pageable host memory
// returns once the source bytes are staged, so the caller may free them); device to host synchronizes, because
// the caller reads the bytes next. A kernel's failure therefore surfaces, at the latest, at the next copy to the
// host, as an Error naming the call.
//
// NOTE: in the emulated build (CUEMU) blocks are cached by their exact size and refilled with 0xFF bytes when
// reused, so that the emulator's checks (ASan one byte past the end; NaN in memory nobody wrote) still work
// through the cache.
#include <map>
#include <mutex>
#include <vector>

#include "cuda/backend.h"
#include "framework/device.h"

namespace strata {

void cuda_fail(const char* call, cudaError_t error, const char* file, int line) {
    fail_at(file, line,
            str("CUDA error: ", call, " returned ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")"));
}

namespace {

constexpr int kMaxDevices = 16;

struct DeviceState {
    cudaStream_t stream = nullptr;
    std::map<size_t, std::vector<void*>> free_blocks;  // bucket size -> blocks ready for reuse
    size_t cached_bytes = 0;
};

struct CudaState {
    std::mutex mutex;
    DeviceState devices[kMaxDevices];
    int device_count = -1;  // -1: not asked yet
};

CudaState& state() {
    static CudaState* s = new CudaState();  // never destroyed: tensors may be freed during static destruction
    return *s;
}

size_t bucket_size(size_t n) {
#if defined(CUEMU)
    return n;
#else
    if (n < (size_t(1) << 20)) return (n + 511) & ~size_t(511);
    size_t p = size_t(1) << 20;
    while (p < n) p <<= 1;
    size_t step = p / 8;
    return (n + step - 1) / step * step;
#endif
}

int cuda_device_count() {
    CudaState& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.device_count < 0) {
        // Without a driver this fails (cudaErrorInsufficientDriver) and leaves count alone: no devices.
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess) {
            cudaGetLastError();
            count = 0;
        }
        s.device_count = count < kMaxDevices ? count : kMaxDevices;
    }
    return s.device_count;
}

void check_index(int index) {
    int count = cuda_device_count();
    STRATA_CHECK(index >= 0 && index < count, "cuda:", index, " is not available: this machine has ", count,
                 " usable CUDA device(s) (no GPU or no driver gives 0); use device=cpu");
}

// Makes `index` the calling thread's current device while it exists.
struct DeviceGuard {
    int previous = -1;
    explicit DeviceGuard(int index) {
        int current = 0;
        CUDA_CHECK(cudaGetDevice(&current));
        if (current != index) {
            CUDA_CHECK(cudaSetDevice(index));
            previous = current;
        }
    }
    ~DeviceGuard() {
        if (previous >= 0) cudaSetDevice(previous);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;
};

cudaStream_t stream_of(int index) {
    check_index(index);
    CudaState& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceState& d = s.devices[index];
    if (!d.stream) {
        DeviceGuard guard(index);
        CUDA_CHECK(cudaStreamCreate(&d.stream));
    }
    return d.stream;
}

// Gives the device's cached blocks back to CUDA (when cudaMalloc is out of memory).
void release_cached(int index) {
    CudaState& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceState& d = s.devices[index];
    DeviceGuard guard(index);
    CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [size, blocks] : d.free_blocks)
        for (void* p : blocks) CUDA_CHECK(cudaFree(p));
    d.free_blocks.clear();
    d.cached_bytes = 0;
}

void* cuda_alloc(size_t nbytes, int index) {
    if (nbytes == 0) return nullptr;
    check_index(index);
    size_t size = bucket_size(nbytes);
    CudaState& s = state();
    {
        std::lock_guard<std::mutex> lock(s.mutex);
        DeviceState& d = s.devices[index];
        auto it = d.free_blocks.find(size);
        if (it != d.free_blocks.end() && !it->second.empty()) {
            void* p = it->second.back();
            it->second.pop_back();
            d.cached_bytes -= size;
#if defined(CUEMU)
            if (cuemu::settings().poison) CUDA_CHECK(cudaMemset(p, 0xFF, size));
#endif
            return p;
        }
    }
    DeviceGuard guard(index);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        release_cached(index);
        e = cudaMalloc(&p, size);
    }
    if (e == cudaErrorMemoryAllocation)
        STRATA_FAIL("out of CUDA memory on cuda:", index, " allocating ", nbytes, " bytes (after releasing the cache)");
    CUDA_CHECK(e);
    return p;
}

void cuda_free(void* ptr, size_t nbytes, int index) {
    if (!ptr) return;
    size_t size = bucket_size(nbytes);
    CudaState& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceState& d = s.devices[index];
    d.free_blocks[size].push_back(ptr);
    d.cached_bytes += size;
}

void cuda_copy_from_host(void* dst, const void* src, size_t nbytes, int index) {
    if (nbytes == 0) return;
    cudaStream_t stream = stream_of(index);
    DeviceGuard guard(index);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream));
}

void cuda_copy_to_host(void* dst, const void* src, size_t nbytes, int index) {
    if (nbytes == 0) return;
    cudaStream_t stream = stream_of(index);
    DeviceGuard guard(index);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

void cuda_copy_on_device(void* dst, const void* src, size_t nbytes, int index) {
    if (nbytes == 0) return;
    cudaStream_t stream = stream_of(index);
    DeviceGuard guard(index);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream));
}

void cuda_memset(void* ptr, int byte, size_t nbytes, int index) {
    if (nbytes == 0) return;
    cudaStream_t stream = stream_of(index);
    DeviceGuard guard(index);
    CUDA_CHECK(cudaMemsetAsync(ptr, byte, nbytes, stream));
}

void cuda_synchronize(int index) {
    cudaStream_t stream = stream_of(index);
    DeviceGuard guard(index);
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

// Kernels run on the calling thread's current device (backend.h): the dispatcher calls this before each one.
void cuda_make_current(int index) {
    int current = 0;
    CUDA_CHECK(cudaGetDevice(&current));
    if (current == index) return;
    check_index(index);
    CUDA_CHECK(cudaSetDevice(index));
}

const DeviceBackend kCudaBackend = {
    "cuda",            cuda_device_count,   cuda_alloc,  cuda_free,        cuda_copy_from_host,
    cuda_copy_to_host, cuda_copy_on_device, cuda_memset, cuda_synchronize, cuda_make_current,
};

struct RegisterCudaBackend {
    RegisterCudaBackend() { register_backend(DeviceType::CUDA, &kCudaBackend, __FILE__); }
} register_cuda_backend;

}  // namespace

cudaStream_t cuda_current_stream() {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    return stream_of(device);
}

}  // namespace strata
