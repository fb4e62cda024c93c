// The device registry and the CPU backend.
//
// CPU memory comes from a small caching allocator: freed blocks are kept in per-size free lists and handed out
// again for the same size. A training step allocates the same activation sizes every iteration, so after the
// first step almost every allocation is a list pop instead of an mmap + page faults (large malloc blocks are
// returned to the kernel on free, and touching fresh pages costs more than many of our kernels). Blocks are
// 64-byte aligned for AVX-512 loads.
#include "framework/device.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "framework/check.h"
#include "framework/registration.h"

namespace strata {

const char* device_type_name(DeviceType t) {
    return t == DeviceType::CPU ? "cpu" : "cuda";
}

std::string device_name(Device d) {
    if (d.type == DeviceType::CPU) return "cpu";
    return str(device_type_name(d.type), ":", d.index);
}

Device parse_device(const std::string& text) {
    if (text == "cpu") return kCPU;
    if (text == "cuda") return Device{DeviceType::CUDA, 0};
    if (text.rfind("cuda:", 0) == 0) {
        std::string idx = text.substr(5);
        bool digits = !idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos;
        STRATA_CHECK(digits, "bad device '", text, "': expected cpu, cuda or cuda:<index>");
        return Device{DeviceType::CUDA, std::stoi(idx)};
    }
    STRATA_FAIL("unknown device '", text, "': expected cpu, cuda or cuda:<index>");
}

Device select_device(const std::string& setting, std::string* note) {
    bool built = has_backend(DeviceType::CUDA);
    int gpus = built ? backend(DeviceType::CUDA).device_count() : 0;
    if (setting == "auto") {
        if (gpus > 0) return Device{DeviceType::CUDA, 0};
        if (note)
            *note = built ? "device=auto: no usable GPU (no device, or no NVIDIA driver); running on the CPU"
                          : "device=auto: this build has no CUDA backend (built with CUDA=0); running on the CPU";
        return kCPU;
    }
    Device d = parse_device(setting);
    if (d.type == DeviceType::CUDA) {
        STRATA_CHECK(built, "device=", setting, ": this build has no CUDA backend (rebuild with CUDA=1, which needs "
                     "nvcc), or use device=cpu");
        STRATA_CHECK(d.index < gpus, "device=", setting, ": ", gpus == 0 ? std::string("no usable GPU (no device, or no "
                     "NVIDIA driver)") : str("only ", gpus, " GPU(s)"), "; use device=cpu or device=auto");
    }
    return d;
}

// ---- the CPU caching allocator ----

namespace {

struct CpuCache {
    std::mutex mutex;
    std::map<size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks ready for reuse
    size_t cached_bytes = 0;
};

CpuCache& cpu_cache() {
    static CpuCache* cache = new CpuCache();  // never destroyed: tensors may be freed during static destruction
    return *cache;
}

// Sizes are rounded so that slightly different requests share blocks: to 64 bytes below 1 MiB, and to 1/8 of
// the next power of two above it (at most 12.5% waste).
size_t round_size(size_t n) {
    if (n < (size_t(1) << 20)) return (n + 63) & ~size_t(63);
    size_t p = size_t(1) << 20;
    while (p < n) p <<= 1;
    size_t step = p / 8;
    return (n + step - 1) / step * step;
}

// Above this many cached bytes, freed blocks go back to the system instead of the cache.
constexpr size_t kMaxCachedBytes = size_t(4) << 30;

void* cpu_alloc(size_t nbytes, int) {
    if (nbytes == 0) return nullptr;
    size_t size = round_size(nbytes);
    CpuCache& c = cpu_cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        auto it = c.free_blocks.find(size);
        if (it != c.free_blocks.end() && !it->second.empty()) {
            void* p = it->second.back();
            it->second.pop_back();
            c.cached_bytes -= size;
            return p;
        }
    }
    void* p = std::aligned_alloc(64, size);
    STRATA_CHECK(p != nullptr, "out of CPU memory allocating ", nbytes, " bytes");
    return p;
}

void cpu_free(void* ptr, size_t nbytes, int) {
    if (!ptr) return;
    size_t size = round_size(nbytes);
    CpuCache& c = cpu_cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        if (c.cached_bytes + size <= kMaxCachedBytes) {
            c.free_blocks[size].push_back(ptr);
            c.cached_bytes += size;
            return;
        }
    }
    std::free(ptr);
}

void cpu_copy(void* dst, const void* src, size_t nbytes, int) {
    if (nbytes) std::memcpy(dst, src, nbytes);
}
void cpu_memset(void* ptr, int byte, size_t nbytes, int) {
    if (nbytes) std::memset(ptr, byte, nbytes);
}
void cpu_synchronize(int) {}
int cpu_device_count() { return 1; }

const DeviceBackend kCpuBackend = {
    "cpu", cpu_device_count, cpu_alloc, cpu_free, cpu_copy, cpu_copy, cpu_copy, cpu_memset, cpu_synchronize,
};

const DeviceBackend* g_backends[kNumDeviceTypes] = {&kCpuBackend, nullptr};

// The CPU backend is in the table from the start (constant-initialised: tensors made during static initialisation
// need it); this only records its owner, so that another CPU backend is refused as a duplicate.
struct NoteCpuBackend {
    NoteCpuBackend() { add_registration_or_exit("backend", "cpu", __FILE__, [] {}); }
} note_cpu_backend;

}  // namespace

void register_backend(DeviceType type, const DeviceBackend* b, const std::string& owner) {
    add_registration_or_exit("backend", device_type_name(type), owner, [type, b] { g_backends[int(type)] = b; });
}

bool has_backend(DeviceType type) {
    return g_backends[int(type)] != nullptr;
}

const DeviceBackend& backend(DeviceType type) {
    const DeviceBackend* b = g_backends[int(type)];
    STRATA_CHECK(b != nullptr, "this build has no ", device_type_name(type),
                 " backend; rebuild with CUDA=1 (needs nvcc) or use device=cpu");
    return *b;
}

void make_device_current(Device device) {
    if (device.type == DeviceType::CPU) return;
    const DeviceBackend& b = backend(device.type);
    if (b.make_current) b.make_current(device.index);
}

}  // namespace strata
