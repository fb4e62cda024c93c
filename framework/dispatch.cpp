// The error every kernel-table miss ends in.
#include "framework/dispatch.h"

#include "framework/check.h"

namespace strata {

void fail_missing_kernel(const char* kernel, Device device, const std::string& registered) {
    STRATA_FAIL("kernel '", kernel, "' has no ", device_type_name(device.type), " implementation (registered for: ",
                registered, "). Move the tensors to a device that has it, or add the kernel for ",
                device_type_name(device.type), " (docs/adding_an_op.md)");
}

}  // namespace strata
