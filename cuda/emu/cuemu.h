// The one header every CUDA source in Strata includes instead of <cuda_runtime.h>.
//
// A file under cuda/ is compiled two ways:
//   - the real build: nvcc compiles it for the GPU. This header then only includes <cuda_runtime.h> and defines
//     the two macros below as the plain CUDA constructs they stand for;
//   - the emulated build: g++ compiles it as C++ (`g++ -x c++ -DCUEMU`). This header then selects the SIMT
//     emulator in cuda/emu/, which runs every GPU thread as a fiber on the CPU (docs/cuda.md).
//
// The source rules that let both compilers accept the same file (docs/cuda.md, "Source rules"):
//   1. launch kernels with CUEMU_LAUNCH(kernel, grid, block, smem_bytes, stream, args...) instead of
//      kernel<<<grid, block, smem_bytes, stream>>>(args...); parenthesise a templated kernel:
//      CUEMU_LAUNCH((k<T>), ...);
//   2. declare dynamic shared memory with CUEMU_DYNAMIC_SHARED(T, name) instead of `extern __shared__ T name[]`;
//      `name` is then a T* to the launch's dynamic shared bytes (16-byte aligned);
//   3. no initialisers on __shared__ variables (CUDA forbids them anyway);
//   4. everything else is plain CUDA.
#pragma once

#if defined(CUEMU)

#if defined(__CUDACC__)
#error "CUEMU selects the CPU emulator: compile emulated sources with a host compiler (g++ -x c++ -DCUEMU), not nvcc"
#endif
#include "cuda/emu/runtime.h"
#include "cuda/emu/kernel_api.h"

#else

#include <cuda_runtime.h>

#define CUEMU_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#define CUEMU_DYNAMIC_SHARED(T, name)                                         \
    extern __shared__ __align__(16) unsigned char cuemu_dynamic_shared_[];  \
    T* name = reinterpret_cast<T*>(cuemu_dynamic_shared_)

#endif
