// The kernels the tensor core itself needs: strided copies (contiguous(), copy_(), narrow's backward) and the
// gradient accumulation of the autograd engine. Their CPU versions are in tensor_kernels.cpp; a device backend
// registers its own under the same names.
#pragma once

#include <cstddef>
#include <cstdint>

#include "framework/dispatch.h"

namespace strata {

constexpr int kMaxDims = 8;

// A tensor's layout passed by value to kernels: sizes and strides in elements.
struct StridedLayout {
    int ndim = 0;
    int64_t shape[kMaxDims] = {};
    int64_t strides[kMaxDims] = {};
};

// dst[i] = src[i] for every multi-index i of the (shared) shape; both pointers already include their offsets.
// elem_size is 4 or 8 bytes. numel = product of the shape.
using copy_strided_fn = void (*)(void* dst, const StridedLayout& dst_layout, const void* src,
                                 const StridedLayout& src_layout, int64_t numel, size_t elem_size);
// y[i] += x[i], i < n. The only kernel that accumulates: it is how the engine sums gradients on fan-out.
using accumulate_fn = void (*)(float* y, const float* x, int64_t n);
// y[i] = value, i < n.
using fill_fn = void (*)(float* y, float value, int64_t n);

extern KernelTable<copy_strided_fn> copy_strided;
extern KernelTable<accumulate_fn> accumulate;
extern KernelTable<fill_fn> fill;

}  // namespace strata
