// Kernel tables: how an op finds the kernel for the device its tensors live on.
//
// Each kernel of each op has one KernelTable, a typed function-pointer slot per device type (PyTorch's
// DispatchStub, much reduced). The table is declared once, in the header of the op it belongs to (layers/relu.h,
// framework/tensor_kernels.h for the tensor primitives), and each device fills its slot from the file that
// implements the kernel:
//
//     // layers/relu.cpp
//     REGISTER_KERNEL(relu_forward, DeviceType::CPU, relu_forward_cpu);
//     // cuda/relu.cu
//     REGISTER_KERNEL(relu_forward, DeviceType::CUDA, relu_forward_cuda);
//
// and the op calls `relu_forward[x.device()](y, x, n)`. A missing slot fails loudly, naming the devices that do
// have the kernel; there is never a silent fallback to another device.
//
// NOTE: tables are constant-initialised (constexpr constructor, `constinit` at the definition), so registrars
// running during static initialisation in any order always find them ready.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "framework/device.h"
#include "framework/profile.h"

namespace strata {

[[noreturn]] void fail_missing_kernel(const char* kernel, Device device, const std::string& registered);

// What KernelTable's operator[] returns: the kernel, called through a KernelTimer so that `profile=1` sees every
// kernel call (framework/profile.h); with profiling off the timer does nothing.
template <typename Fn>
struct KernelCall {
    Fn fn;
    const char* name;
    template <typename... Args>
    decltype(auto) operator()(Args&&... args) const {
        KernelTimer timer(profiling() ? name : nullptr);
        return fn(std::forward<Args>(args)...);
    }
    operator Fn() const { return fn; }
};

template <typename Fn>
struct KernelTable {
    const char* name;
    Fn slots[kNumDeviceTypes] = {};

    constexpr explicit KernelTable(const char* kernel_name) : name(kernel_name) {}

    KernelCall<Fn> operator[](Device device) const {
        Fn fn = slots[int(device.type)];
        if (!fn) fail_missing_kernel(name, device, registered());
        return {fn, name};
    }
    bool has(DeviceType type) const { return slots[int(type)] != nullptr; }
    std::string registered() const {
        std::string list;
        for (int t = 0; t < kNumDeviceTypes; ++t) {
            if (!slots[t]) continue;
            if (!list.empty()) list += ", ";
            list += device_type_name(DeviceType(t));
        }
        return list.empty() ? "none" : list;
    }
};

// Every registration REGISTER_KERNEL made, in the order it ran: for the test that checks that each kernel has its
// op cases (tests/op_cases.h). Complete once static initialisation is over.
struct RegisteredKernel {
    std::string name;
    DeviceType device;
};
const std::vector<RegisteredKernel>& registered_kernels();
void note_registered_kernel(const char* name, DeviceType type);

struct KernelRegistrar {
    template <typename Fn>
    KernelRegistrar(KernelTable<Fn>& table, DeviceType type, Fn fn) {
        table.slots[int(type)] = fn;
        note_registered_kernel(table.name, type);
    }
};

}  // namespace strata

#define STRATA_CONCAT_INNER(a, b) a##b
#define STRATA_CONCAT(a, b) STRATA_CONCAT_INNER(a, b)
#define REGISTER_KERNEL(table, device_type, fn) \
    static ::strata::KernelRegistrar STRATA_CONCAT(kernel_registrar_, __LINE__)(table, device_type, fn)
