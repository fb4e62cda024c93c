// count_nonfinite on the GPU: the CUDA twin of the kernel in framework/finite.cpp (the math is there).
//
//   counts[0] += #{i < n : x[i] is NaN or +-Inf},   counts[1] = min(counts[1], the smallest such i)
//
// One thread per element in a grid-stride loop; each thread counts its own share in a register and only a thread
// that saw a non-finite value touches the counters (atomicAdd, atomicMin). A healthy tensor thus costs one load per
// element and no atomics at all; the results are integers, so they do not depend on the order of the atomics.
// Memory-bound: the training loop's check of every parameter and gradient reads them once.
#include <climits>

#include "cuda/backend.h"
#include "framework/finite.h"

namespace strata {

namespace {

__global__ void count_nonfinite_kernel_cuda(int64_t* counts, const float* x, int64_t n) {
    long long bad = 0, first = LLONG_MAX;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        unsigned bits = __float_as_uint(x[i]);
        if ((bits & 0x7f800000u) == 0x7f800000u) {
            if (bad == 0) first = i;  // the grid-stride loop visits this thread's indices in increasing order
            ++bad;
        }
    }
    if (bad > 0) {
        atomicAdd(reinterpret_cast<unsigned long long*>(counts), static_cast<unsigned long long>(bad));
        atomicMin(reinterpret_cast<long long*>(counts + 1), first);
    }
}

void count_nonfinite_cuda(int64_t* counts, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(count_nonfinite_kernel_cuda, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), counts, x,
                 n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(count_nonfinite_kernel, DeviceType::CUDA, count_nonfinite_cuda);

}  // namespace strata
