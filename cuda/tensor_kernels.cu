// The tensor core's kernels on the GPU (framework/tensor_kernels.h): strided copies (contiguous(), copy_(), moving
// views between devices), the autograd engine's gradient accumulation, and fill. The CPU versions are in
// framework/tensor_kernels.cpp.
#include "cuda/backend.h"
#include "framework/tensor_kernels.h"

namespace strata {

namespace {

// dst[i] = src[i] over every multi-index i of the shared shape, one element per thread (grid-stride). Each thread
// decodes its linear row-major index into a multi-index and applies both layouts' strides; elem_size is 4 or 8.
__global__ void copy_strided_kernel(char* dst, StridedLayout dl, const char* src, StridedLayout sl, int64_t numel,
                                    int elem_size) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < numel; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t rem = i, doff = 0, soff = 0;
        for (int d = dl.ndim - 1; d >= 0; --d) {
            int64_t idx = rem % dl.shape[d];
            rem /= dl.shape[d];
            doff += idx * dl.strides[d];
            soff += idx * sl.strides[d];
        }
        if (elem_size == 4)
            reinterpret_cast<uint32_t*>(dst)[doff] = reinterpret_cast<const uint32_t*>(src)[soff];
        else
            reinterpret_cast<uint64_t*>(dst)[doff] = reinterpret_cast<const uint64_t*>(src)[soff];
    }
}

// y[i] += x[i]
__global__ void accumulate_kernel(float* y, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] += x[i];
}

// y[i] = value
__global__ void fill_kernel(float* y, float value, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = value;
}

void copy_strided_cuda(void* dst, const StridedLayout& dst_layout, const void* src, const StridedLayout& src_layout,
                       int64_t numel, size_t elem_size) {
    if (numel == 0) return;
    STRATA_CHECK(elem_size == 4 || elem_size == 8, "copy_strided (cuda): element size ", elem_size, " is not 4 or 8");
    CUEMU_LAUNCH(copy_strided_kernel, cuda_grid_for(numel), kCudaBlockSize, 0, cuda_current_stream(),
                 static_cast<char*>(dst), dst_layout, static_cast<const char*>(src), src_layout, numel, int(elem_size));
    CUDA_CHECK_LAUNCH();
}

void accumulate_cuda(float* y, const float* x, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(accumulate_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, x, n);
    CUDA_CHECK_LAUNCH();
}

void fill_cuda(float* y, float value, int64_t n) {
    if (n == 0) return;
    CUEMU_LAUNCH(fill_kernel, cuda_grid_for(n), kCudaBlockSize, 0, cuda_current_stream(), y, value, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(copy_strided, DeviceType::CUDA, copy_strided_cuda);
REGISTER_KERNEL(accumulate, DeviceType::CUDA, accumulate_cuda);
REGISTER_KERNEL(fill, DeviceType::CUDA, fill_cuda);

}  // namespace strata
