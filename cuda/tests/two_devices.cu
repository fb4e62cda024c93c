// The emulated test programs see two CUDA devices (unless CUEMU_DEVICES says otherwise), so that what drives one
// GPU per rank (the NCCL communicator, synchronized batch norm, the data-parallel trainer) runs as on a machine
// with two GPUs: rank r on cuda:r, and the emulator's device checks (a kernel given memory of another device, or
// launched on another device's stream) see every mistake of that kind. Set before main(), so before the backend
// first asks for the device count (it keeps the answer). The real program sees the GPUs the machine has.
#if defined(CUEMU)
#include <cstdlib>

#include "cuda/emu/cuemu.h"

namespace {

struct TwoEmulatedDevices {
    TwoEmulatedDevices() {
        if (!std::getenv("CUEMU_DEVICES")) cuemu::settings().devices = 2;
    }
} two_emulated_devices;

}  // namespace
#endif
