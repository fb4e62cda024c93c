// Finding NaN and Inf: the checks that keep a poisoned tensor from passing for a number.
//
// count_nonfinite counts the NaN and +-Inf values of F32 tensors on their own device (a kernel per device type, so
// the training loop checks CUDA tensors without copying them to the host) and finds the first one's index. Many
// tensors are checked in one call: each tensor gets its own two counters in one buffer per device, and the buffer
// comes back to the host with a single copy, so a check of every parameter and gradient costs one pass over their
// memory and one synchronisation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// What count_nonfinite found in one tensor. first: the flat (row-major) index of the first non-finite value, -1
// when there is none.
struct NonFinite {
    int64_t count = 0;
    int64_t first = -1;
    bool any() const { return count > 0; }
};

NonFinite count_nonfinite(const Tensor& t);
// One result per tensor, in order. Tensors may live on different devices; undefined and integer tensors count as
// finite.
std::vector<NonFinite> count_nonfinite(const std::vector<Tensor>& tensors);

// The first tensor of a named list that holds a non-finite value, with what was found and a description for
// error messages: "'layer0.0.weight' holds 480 non-finite values of 864 (the first at index 3 is inf)".
struct NonFiniteTensor {
    std::string name;
    NonFinite found;
    std::string description;
    int64_t tensors_with_nonfinite = 0;  // how many tensors of the list hold one (this one included)
};
std::optional<NonFiniteTensor> find_nonfinite(const NamedTensors& tensors);

// The kernel: adds the number of non-finite x[i] (i < n) to counts[0] and lowers counts[1] to the smallest such i.
// counts lives on the device of x; the caller sets it to {0, INT64_MAX} first. Integer results, so they do not
// depend on the order in which threads add them.
using count_nonfinite_fn = void (*)(int64_t* counts, const float* x, int64_t n);
extern KernelTable<count_nonfinite_fn> count_nonfinite_kernel;

}  // namespace strata
