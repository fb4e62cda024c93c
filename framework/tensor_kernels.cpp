// CPU versions of the tensor core's kernels (see tensor_kernels.h).
#include "framework/tensor_kernels.h"

#include <cstring>

#include "framework/parallel.h"

namespace strata {

constinit KernelTable<copy_strided_fn> copy_strided{"copy_strided"};
constinit KernelTable<accumulate_fn> accumulate{"accumulate"};
constinit KernelTable<fill_fn> fill{"fill"};

namespace {

bool is_row_major(const StridedLayout& l) {
    int64_t expected = 1;
    for (int i = l.ndim - 1; i >= 0; --i) {
        if (l.shape[i] != 1 && l.strides[i] != expected) return false;
        expected *= l.shape[i];
    }
    return true;
}

// Walks the multi-index of `shape` in row-major order, starting at element `start`, and copies element by element.
// Each parallel chunk decodes its first index once and then increments it like an odometer.
void copy_strided_cpu(void* dst, const StridedLayout& dl, const void* src, const StridedLayout& sl, int64_t numel,
                      size_t elem_size) {
    char* d = static_cast<char*>(dst);
    const char* s = static_cast<const char*>(src);
    int nd = dl.ndim;
    if (is_row_major(dl) && is_row_major(sl)) {  // both contiguous (clone, device copies): one memcpy per chunk
        parallel_for(0, numel, 1 << 18, [&](int64_t lo, int64_t hi) {
            std::memcpy(d + lo * int64_t(elem_size), s + lo * int64_t(elem_size), size_t(hi - lo) * elem_size);
        });
        return;
    }
    parallel_for(0, numel, 1 << 16, [&](int64_t lo, int64_t hi) {
        int64_t idx[kMaxDims] = {};
        int64_t rem = lo;
        for (int i = nd - 1; i >= 0; --i) {
            idx[i] = rem % dl.shape[i];
            rem /= dl.shape[i];
        }
        for (int64_t k = lo; k < hi; ++k) {
            int64_t doff = 0, soff = 0;
            for (int i = 0; i < nd; ++i) {
                doff += idx[i] * dl.strides[i];
                soff += idx[i] * sl.strides[i];
            }
            std::memcpy(d + doff * int64_t(elem_size), s + soff * int64_t(elem_size), elem_size);
            for (int i = nd - 1; i >= 0; --i) {
                if (++idx[i] < dl.shape[i]) break;
                idx[i] = 0;
            }
        }
    });
}

void accumulate_cpu(float* y, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
#pragma omp simd  // vectorized: the compiler cannot rule out overlap on its own (y and x never overlap)
        for (int64_t i = lo; i < hi; ++i) y[i] += x[i];
    });
}

void fill_cpu(float* y, float value, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) y[i] = value;
    });
}

}  // namespace

REGISTER_KERNEL(copy_strided, DeviceType::CPU, copy_strided_cpu);
REGISTER_KERNEL(accumulate, DeviceType::CPU, accumulate_cpu);
REGISTER_KERNEL(fill, DeviceType::CPU, fill_cpu);

}  // namespace strata
