// cuBLAS for the CUDA backend. Backend files include this instead of <cublas_v2.h>: the real build gets the real
// library; the emulated build (-DCUEMU) gets the stand-in on OpenBLAS with the same column-major semantics
// (cuda/emu/cublas_emu.h).
#pragma once

#if defined(CUEMU)
#include "cuda/emu/cublas_emu.h"
#else
#include <cublas_v2.h>
#endif
