// NCCL for the CUDA backend. Backend files include this instead of <nccl.h>: the real build gets the real
// library; the emulated build (-DCUEMU) gets the in-process stand-in (cuda/emu/nccl_emu.h).
#pragma once

#if defined(CUEMU)
#include "cuda/emu/nccl_emu.h"
#else
#include <nccl.h>
#endif
