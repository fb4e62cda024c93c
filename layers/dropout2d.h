// dropout2d: channel-wise dropout of an (N, C, H, W) tensor (whole (n, c) planes are zeroed).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/random.h"
#include "framework/tensor.h"

namespace strata {

// Training with 0 < p: zeroes each (n, c) plane with probability p and scales the kept ones by 1/(1-p), drawing
// one 64-bit key from `gen` (the mask is a function of that key alone). Eval mode or p == 0: returns x itself.
// p must be in [0, 1]; p == 1 gives zeros.
Tensor dropout2d(const Tensor& x, float p, bool training, Generator& gen);
Tensor dropout2d(const Tensor& x, float p, bool training);  // with default_generator()

// The Dropout2d module (registry name "dropout2d", attribute p): dropout2d with default_generator() in training,
// the identity in eval.
class Dropout2d : public Module {
public:
    explicit Dropout2d(float p = 0.5f);
    Tensor forward(const Tensor& x) override { return dropout2d(x, p, is_training()); }
    std::string type_name() const override { return "Dropout2d"; }

    float p;
};

// Kernel. y, x: (N, C, HW). Plane (n, c) is kept iff u64_to_unit_float(random_u64(key, n*C + c)) >= p, and then
// y = x * (1/(1-p)); otherwise y = 0. The backward is this same kernel applied to dy (see dropout2d.cpp).
using dropout2d_forward_fn = void (*)(float* y, const float* x, uint64_t key, float p, int64_t N, int64_t C,
                                      int64_t HW);
extern KernelTable<dropout2d_forward_fn> dropout2d_forward;

}  // namespace strata
