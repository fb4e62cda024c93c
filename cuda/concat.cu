// concat on the GPU: the CUDA twins of the kernels in layers/concat.cpp (the layout is explained there).
//
//   forward:   y[r, col_offset + c] = x[r, c]     for r < outer, c < x_cols   (copy x into its slot of y's rows)
//   backward:  dx[r, c] = dy[r, col_offset + c]                              (copy the slot back out)
//
// Both are strided block copies, so both are exact. The grid is two-dimensional: blockIdx.y walks the rows r (a
// grid-stride loop over rows beyond 65535) and blockIdx.x * blockDim.x + threadIdx.x the columns c of a row (a
// grid-stride loop too), so no thread divides a flat index by x_cols. Consecutive threads copy consecutive floats:
// loads and stores coalesce. In PSPNet's concat along the channels (outer = N, x_cols = C*H*W) each row is long,
// so blocks are full. Memory-bound: 4 bytes read and 4 written per element.
#include "cuda/backend.h"
#include "layers/concat.h"

namespace strata {

namespace {

// y (outer, y_cols), columns [col_offset, col_offset + x_cols)  <-  x (outer, x_cols)
__global__ void concat_forward_kernel(float* y, const float* x, int64_t outer, int64_t x_cols, int64_t y_cols,
                                      int64_t col_offset) {
    int64_t c_stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t r = blockIdx.y; r < outer; r += gridDim.y)
        for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < x_cols; c += c_stride)
            y[r * y_cols + col_offset + c] = x[r * x_cols + c];
}

// dx (outer, x_cols)  <-  dy (outer, y_cols), columns [col_offset, col_offset + x_cols)
__global__ void concat_backward_kernel(float* dx, const float* dy, int64_t outer, int64_t x_cols, int64_t y_cols,
                                       int64_t col_offset) {
    int64_t c_stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t r = blockIdx.y; r < outer; r += gridDim.y)
        for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < x_cols; c += c_stride)
            dx[r * x_cols + c] = dy[r * y_cols + col_offset + c];
}

// Threads per block for rows of x_cols elements: 256, or fewer (a multiple of 32) for short rows, so that few
// threads idle (a concat along the last dimension of small tensors has rows of a few elements).
unsigned copy_block(int64_t x_cols) {
    return x_cols >= kCudaBlockSize ? unsigned(kCudaBlockSize) : unsigned((x_cols + 31) / 32 * 32);
}

// The grid: enough blocks along x to cover one row, one block row per matrix row; both capped at 65535 (grid y's
// limit), the grid-stride loops covering the rest.
dim3 copy_grid(int64_t outer, int64_t x_cols) {
    int64_t blocks_x = (x_cols + copy_block(x_cols) - 1) / copy_block(x_cols);
    return dim3(unsigned(blocks_x < 65535 ? blocks_x : 65535), unsigned(outer < 65535 ? outer : 65535));
}

void concat_forward_cuda(float* y, const float* x, int64_t outer, int64_t x_cols, int64_t y_cols,
                         int64_t col_offset) {
    if (outer * x_cols == 0) return;
    CUEMU_LAUNCH(concat_forward_kernel, copy_grid(outer, x_cols), copy_block(x_cols), 0, cuda_current_stream(), y,
                 x, outer, x_cols, y_cols, col_offset);
    CUDA_CHECK_LAUNCH();
}

void concat_backward_cuda(float* dx, const float* dy, int64_t outer, int64_t x_cols, int64_t y_cols,
                          int64_t col_offset) {
    if (outer * x_cols == 0) return;
    CUEMU_LAUNCH(concat_backward_kernel, copy_grid(outer, x_cols), copy_block(x_cols), 0, cuda_current_stream(),
                 dx, dy, outer, x_cols, y_cols, col_offset);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(concat_forward, DeviceType::CUDA, concat_forward_cuda);
REGISTER_KERNEL(concat_backward, DeviceType::CUDA, concat_backward_cuda);

}  // namespace strata
