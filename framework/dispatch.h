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
// and the op calls `relu_forward[x.device()](y, x, n)` (which makes x's device current first: a CUDA kernel runs
// on the calling thread's current device). A missing slot fails loudly, naming the devices that do
// have the kernel; there is never a silent fallback to another device. A slot filled twice (two files, or a plugin
// and a file, giving "relu_forward" a CPU kernel) is an error naming both (framework/registration.h).
//
// NOTE: tables are constant-initialised (constexpr constructor, `constinit` at the definition), so registrars
// running during static initialisation in any order always find them ready.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "framework/device.h"
#include "framework/profile.h"
#include "framework/registration.h"

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

    // The kernel for `device`, which is made its backend's current device first (make_device_current).
    KernelCall<Fn> operator[](Device device) const {
        Fn fn = slots[int(device.type)];
        if (!fn) fail_missing_kernel(name, device, registered());
        make_device_current(device);
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

// The registration of one kernel is "<table> on <device>", checked and staged like every other (registration.h).
std::string kernel_registration_name(const char* table, DeviceType type);
template <typename Fn>
std::function<void()> fill_kernel_slot(KernelTable<Fn>& table, DeviceType type, Fn fn) {
    return [&table, type, fn] {
        table.slots[int(type)] = fn;
        note_registered_kernel(table.name, type);
    };
}

// Throws when the slot is taken, or when another table has the same name (a kernel put there would never be
// called); REGISTER_KERNEL ends the program instead (it runs before main()).
template <typename Fn>
void register_kernel(KernelTable<Fn>& table, DeviceType type, Fn fn, const std::string& owner) {
    add_registration("kernel table", table.name, owner, [] {}, &table);
    add_registration("kernel", kernel_registration_name(table.name, type), owner, fill_kernel_slot(table, type, fn));
}

struct KernelRegistrar {
    template <typename Fn>
    KernelRegistrar(KernelTable<Fn>& table, DeviceType type, Fn fn, const char* file) {
        add_registration_or_exit("kernel table", table.name, file, [] {}, &table);
        add_registration_or_exit("kernel", kernel_registration_name(table.name, type), file,
                                 fill_kernel_slot(table, type, fn));
    }
};

}  // namespace strata

#define STRATA_CONCAT_INNER(a, b) a##b
#define STRATA_CONCAT(a, b) STRATA_CONCAT_INNER(a, b)
#define REGISTER_KERNEL(table, device_type, fn) \
    static ::strata::KernelRegistrar STRATA_CONCAT(kernel_registrar_, __LINE__)(table, device_type, fn, __FILE__)
