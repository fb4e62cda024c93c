// The error every kernel-table miss ends in, and the list of registrations.
#include "framework/dispatch.h"

#include "framework/check.h"

namespace strata {

namespace {
// Function-local, so that registrars running during static initialisation in any order find it constructed.
std::vector<RegisteredKernel>& kernel_list() {
    static std::vector<RegisteredKernel> list;
    return list;
}
}  // namespace

const std::vector<RegisteredKernel>& registered_kernels() { return kernel_list(); }

void note_registered_kernel(const char* name, DeviceType type) { kernel_list().push_back({name, type}); }

std::string kernel_registration_name(const char* table, DeviceType type) {
    return std::string(table) + " on " + device_type_name(type);
}

void fail_missing_kernel(const char* kernel, Device device, const std::string& registered) {
    STRATA_FAIL("kernel '", kernel, "' has no ", device_type_name(device.type), " implementation (registered for: ",
                registered, "). Move the tensors to a device that has it, or add the kernel for ",
                device_type_name(device.type), " (docs/adding_an_op.md)");
}

}  // namespace strata
