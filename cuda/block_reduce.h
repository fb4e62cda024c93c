// Block-wide sums for the backend's reduction kernels (sum, batchnorm2d, cross_entropy), in double.
//
// A block of blockDim.x threads (a multiple of 32, at most 1024) sums one value per thread in two steps: each warp
// adds its 32 values with a tree of shuffles (__shfl_down_sync: lane i adds lane i + 16, then i + 8, ...), lane 0 of
// every warp leaves its warp's sum in shared memory, and warp 0 adds those (at most 32) the same way. The order of
// the additions is fixed by the thread indices alone, never by timing, so the result is the same on every run.
//
// Why double: the reductions here add up to millions of floats (a batch norm channel of a PSPNet batch has
// N*H*W = 57600 of them); a float accumulator would lose digits the CPU kernels (which sum in double) keep. On the
// data-centre GPUs we build for (sm_80, sm_90) double adds run at half the float rate, far more than a
// memory-bound reduction needs.
#pragma once

#include "cuda/backend.h"

namespace strata {

// The sum of v over the 32 lanes of the calling warp, in lane 0 (the other lanes hold partial sums). Every lane of
// the warp must call it.
__device__ inline double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// The sum of v over the whole block, returned to EVERY thread. partials is a __shared__ double[33] of the calling
// kernel. Every thread of the block must call it (it contains two __syncthreads). It may be called again at once
// with the same partials: the next call writes partials[warp] only after this call's second barrier, by which point
// warp 0 has finished reading them, and writes partials[32] only after its own first barrier, by which point every
// thread has read this call's total.
__device__ inline double block_sum(double v, double* partials) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) partials[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < int(blockDim.x / 32) ? partials[lane] : 0.0;
        v = warp_sum(v);
        if (lane == 0) partials[32] = v;
    }
    __syncthreads();
    return partials[32];
}

}  // namespace strata
