// Storage: the bytes behind one or more tensors.
//
// A Storage owns `nbytes` on one device and gives them back to that device's backend when the last tensor that
// views it is gone (tensors hold it through a shared_ptr). It knows nothing about shape or type: those belong to
// the Tensor, so that reshape, permute and narrow can make new tensors over the same bytes (as in PyTorch's
// c10::StorageImpl).
#pragma once

#include <cstddef>

#include "framework/device.h"

namespace strata {

struct Storage {
    Storage(size_t nbytes, Device device) : nbytes(nbytes), device(device) {
        data = backend(device.type).alloc(nbytes, device.index);
    }
    ~Storage() { backend(device.type).free(data, nbytes, device.index); }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    void* data = nullptr;
    size_t nbytes = 0;
    Device device;
};

}  // namespace strata
