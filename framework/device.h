// Devices and the backend interface.
//
// A Device names where a tensor's bytes live: the CPU, or CUDA device `index`. Each device type has one
// DeviceBackend, a small table of functions (allocate, free, copy, fill, synchronize) in the spirit of ggml's
// backend interface. The CPU backend is filled in device.cpp; the CUDA one is filled by cuda/ when the build has
// CUDA, and calling into an empty slot fails with a message saying how to get it.
//
// There is no global "current device": every tensor carries its own (style rule 4). A backend whose runtime has one
// (CUDA: per host thread, and a kernel runs on it) gets make_current(index) before each kernel of that device is
// called (framework/dispatch.h), so a tensor on cuda:1 runs its kernels on cuda:1 from any thread.
#pragma once

#include <cstddef>
#include <string>

namespace strata {

enum class DeviceType : int { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

struct Device {
    DeviceType type = DeviceType::CPU;
    int index = 0;

    bool operator==(const Device& o) const { return type == o.type && index == o.index; }
    bool operator!=(const Device& o) const { return !(*this == o); }
    bool is_cpu() const { return type == DeviceType::CPU; }
};

inline constexpr Device kCPU{DeviceType::CPU, 0};

const char* device_type_name(DeviceType t);   // "cpu", "cuda"
std::string device_name(Device d);            // "cpu", "cuda:0"
Device parse_device(const std::string& text); // "cpu", "cuda", "cuda:1"; anything else is an error

// What a device type must provide. Sizes are in bytes; `index` selects the device of that type.
struct DeviceBackend {
    const char* name;
    int (*device_count)();                                   // how many devices of this type are usable now
    void* (*alloc)(size_t nbytes, int index);
    void (*free)(void* ptr, size_t nbytes, int index);
    void (*copy_from_host)(void* dst, const void* src, size_t nbytes, int index);
    void (*copy_to_host)(void* dst, const void* src, size_t nbytes, int index);
    void (*copy_on_device)(void* dst, const void* src, size_t nbytes, int index);
    void (*memset)(void* ptr, int byte, size_t nbytes, int index);
    void (*synchronize)(int index);
    void (*make_current)(int index) = nullptr;               // before a kernel on device `index`; null: nothing to do
};

// Resolves a device setting as programs accept it: "cpu", "cuda", "cuda:N", or "auto" (the first CUDA device if
// this build has the CUDA backend and a GPU is usable, else the CPU). `note` receives a one-line explanation when
// "auto" falls back to the CPU. "cuda" without a usable GPU is an error that says why and suggests device=cpu.
Device select_device(const std::string& setting, std::string* note = nullptr);

// Installs the backend for a device type (cuda/ calls this from a static registrar, owner = its __FILE__). A device
// type that has a backend already is an error naming both owners, and ends the program (it runs before main()).
void register_backend(DeviceType type, const DeviceBackend* backend, const std::string& owner);
// The backend for a device; fails with a clear message if this build has none.
const DeviceBackend& backend(DeviceType type);
// Makes `device` its backend's current one (make_current), before a kernel runs on it. Nothing for the CPU.
void make_device_current(Device device);
bool has_backend(DeviceType type);

}  // namespace strata
