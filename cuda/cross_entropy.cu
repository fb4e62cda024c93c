// cross_entropy on the GPU: the CUDA twins of the kernels in layers/cross_entropy.cpp (the math and its NOTEs on the
// ignore label, the empty case and bad labels are there).
//
//   forward:   per labelled pixel (label k != ignore_index):  l = m + log sum_c exp(x_c - m) - x_k,  m = max_c x_c
//              loss = (sum of l) / count;  bad = the first pixel whose label is neither a class nor ignore_index
//   backward:  dx_c = (softmax(x)_c - [c == k]) * dloss / count  for a labelled pixel, 0 for an ignored one
//
// x is (n, c, s): the c logits of a pixel are s floats apart, so with one thread per pixel the threads of a warp
// read 32 neighbouring floats for each class (coalesced).
//
// Forward, two kernels:
//   1. cross_entropy_pixel_kernel: one thread per pixel (grid-stride) writes the pixel's loss into the op's scratch
//      pixel_loss (0 for ignored pixels and bad labels). Memory-bound for PSPNet's class counts: c loads of 4 bytes
//      per pixel, each with one expf.
//   2. cross_entropy_reduce_kernel: ONE block of 1024 threads adds the pixel losses in double, counts the labelled
//      pixels and finds the first bad label's position with block reductions (shuffles + shared memory). That is the
//      deterministic reduction: the order of the additions depends only on the pixel count, never on timing (no
//      atomics; an atomicMin would find the same first bad pixel, but a float atomicAdd of the loss would make it
//      vary in its last bits from run to run). The kernel writes loss, count and the bad-label report, which the
//      op copies back and turns into an Error. One block reads the 8 bytes of pixel_loss and target per pixel with
//      about 1024 loads in flight, i.e. at a few tens of GB/s: ~1 ms for a PSPNet batch of 16 x 473 x 473 pixels
//      (29 MB), under 1% of a training step. A multi-block version needs scratch for the block partials, which the
//      kernel signature does not carry.
//   The sum is not in the CPU's order and expf/logf on the GPU are within 1-2 ulp of the host's, so the loss
//   matches the CPU to about 1e-6 relative.
// Backward: one thread per pixel (grid-stride) finds the max and the sum of exps, then writes each dx once (the CPU
// writes exp, then scales it in place; here the exp is recomputed rather than re-read from global memory).
// Memory-bound: c loads (the second and third pass hit L1) and c stores per pixel.
#include <cstdint>

#include "cuda/backend.h"
#include "cuda/block_reduce.h"
#include "layers/cross_entropy.h"

namespace strata {

namespace {

constexpr int kReduceThreads = 1024;  // the one block of the loss reduction

// One pixel's loss, 0 for ignored pixels and bad labels. logits, pixel_loss: see cross_entropy_forward_cuda.
__global__ void cross_entropy_pixel_kernel(float* pixel_loss, const float* logits, const int32_t* target, int64_t n,
                                           int64_t c, int64_t s, int64_t ignore_index) {
    for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < n * s; p += int64_t(gridDim.x) * blockDim.x) {
        const int64_t label = target[p];
        if (label == ignore_index || label < 0 || label >= c) {
            pixel_loss[p] = 0.0f;
            continue;
        }
        const float* x = logits + (p / s) * c * s + p % s;  // x[k * s] is class k of this pixel
        float m = x[0];
        for (int64_t k = 1; k < c; ++k) m = m < x[k * s] ? x[k * s] : m;  // std::max's rule, as on the CPU
        float sum = 0.0f;
        for (int64_t k = 0; k < c; ++k) sum += expf(x[k * s] - m);
        pixel_loss[p] = m + logf(sum) - x[label * s];
    }
}

// The smallest v over the block, returned to every thread; partials is a __shared__ long long[33]. The same
// structure (and the same rules) as block_sum in cuda/block_reduce.h.
__device__ long long block_min(long long v, long long* partials) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int offset = 16; offset > 0; offset /= 2) v = min(v, __shfl_down_sync(0xffffffffu, v, offset));
    if (lane == 0) partials[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < int(blockDim.x / 32) ? partials[lane] : partials[0];
        for (int offset = 16; offset > 0; offset /= 2) v = min(v, __shfl_down_sync(0xffffffffu, v, offset));
        if (lane == 0) partials[32] = v;
    }
    __syncthreads();
    return partials[32];
}

// One block: loss[0] = mean of pixel_loss over the labelled pixels (0 if none), count[0] = their number, bad[0] =
// the first pixel with a label outside [0, c) that is not ignore_index (-1 if none), bad[1] = its label.
__global__ void cross_entropy_reduce_kernel(float* loss, int64_t* count, int64_t* bad, const float* pixel_loss,
                                            const int32_t* target, int64_t pixels, int64_t c, int64_t ignore_index) {
    __shared__ double sum_partials[33];
    __shared__ long long min_partials[33];
    double total = 0.0;
    double labelled = 0.0;        // a count, kept in double to reuse block_sum: exact up to 2^53
    long long first_bad = pixels;  // `pixels` = none found; a thread's first find is its smallest (p only grows)
    for (int64_t p = threadIdx.x; p < pixels; p += blockDim.x) {
        const int64_t label = target[p];
        if (label == ignore_index) continue;
        if (label < 0 || label >= c) {
            if (first_bad == pixels) first_bad = p;
            continue;
        }
        total += pixel_loss[p];
        labelled += 1.0;
    }
    total = block_sum(total, sum_partials);
    labelled = block_sum(labelled, sum_partials);
    first_bad = block_min(first_bad, min_partials);
    if (threadIdx.x == 0) {
        count[0] = int64_t(labelled);
        loss[0] = labelled > 0.0 ? float(total / labelled) : 0.0f;
        bad[0] = first_bad < pixels ? first_bad : -1;
        bad[1] = first_bad < pixels ? target[first_bad] : 0;
    }
}

// dlogits (n, c, s) from logits (n, c, s), target (n, s) and dloss (1 element on the device).
__global__ void cross_entropy_backward_kernel(float* dlogits, const float* dloss, const float* logits,
                                              const int32_t* target, float inv_count, int64_t n, int64_t c, int64_t s,
                                              int64_t ignore_index) {
    const float scale = dloss[0] * inv_count;
    for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < n * s; p += int64_t(gridDim.x) * blockDim.x) {
        const int64_t offset = (p / s) * c * s + p % s;
        const float* x = logits + offset;
        float* dx = dlogits + offset;
        const int64_t label = target[p];
        if (label == ignore_index || label < 0 || label >= c) {  // bad labels never get here: the forward threw
            for (int64_t k = 0; k < c; ++k) dx[k * s] = 0.0f;
            continue;
        }
        float m = x[0];
        for (int64_t k = 1; k < c; ++k) m = m < x[k * s] ? x[k * s] : m;
        float sum = 0.0f;
        for (int64_t k = 0; k < c; ++k) sum += expf(x[k * s] - m);
        const float norm = scale / sum;  // softmax_k * scale = exp_k * norm
        for (int64_t k = 0; k < c; ++k) {
            float d = expf(x[k * s] - m) * norm;
            dx[k * s] = k == label ? d - scale : d;
        }
    }
}

// logits (n, c, s); target, pixel_loss (n, s); loss, count: 1 element; bad: 2 elements. All device memory.
void cross_entropy_forward_cuda(float* loss, int64_t* count, int64_t* bad, float* pixel_loss, const float* logits,
                                const int32_t* target, int64_t n, int64_t c, int64_t s, int64_t ignore_index) {
    const int64_t pixels = n * s;
    if (pixels > 0) {
        CUEMU_LAUNCH(cross_entropy_pixel_kernel, cuda_grid_for(pixels), kCudaBlockSize, 0, cuda_current_stream(),
                     pixel_loss, logits, target, n, c, s, ignore_index);
        CUDA_CHECK_LAUNCH();
    }
    // also with no pixels: it writes loss = 0, count = 0 and "no bad label"
    CUEMU_LAUNCH(cross_entropy_reduce_kernel, 1, kReduceThreads, 0, cuda_current_stream(), loss, count, bad,
                 pixel_loss, target, pixels, c, ignore_index);
    CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward_cuda(float* dlogits, const float* dloss, const float* logits, const int32_t* target,
                                 float inv_count, int64_t n, int64_t c, int64_t s, int64_t ignore_index) {
    const int64_t pixels = n * s;
    if (pixels == 0) return;
    CUEMU_LAUNCH(cross_entropy_backward_kernel, cuda_grid_for(pixels), kCudaBlockSize, 0, cuda_current_stream(),
                 dlogits, dloss, logits, target, inv_count, n, c, s, ignore_index);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(cross_entropy_forward, DeviceType::CUDA, cross_entropy_forward_cuda);
REGISTER_KERNEL(cross_entropy_backward, DeviceType::CUDA, cross_entropy_backward_cuda);

}  // namespace strata
