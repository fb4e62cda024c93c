// batchnorm2d: batch normalisation over the (N, H, W) positions of each channel of an (N, C, H, W) tensor.
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// y = (x - mean) / sqrt(var + eps) * weight + bias, per channel. x: (N, C, H, W); weight, bias, running_mean,
// running_var: (C). weight/bias may be undefined (no affine transform). training: mean and biased variance of the
// batch, and running_mean/running_var (if defined) are updated IN PLACE with `momentum` (PyTorch's rule, unbiased
// variance); eval: the running statistics are used and must be defined.
Tensor batchnorm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                   const Tensor& running_var, bool training, float momentum, float eps);

// The BatchNorm2d module (registry name "batchnorm2d"; attributes num_features, eps, momentum, affine), with
// PyTorch's names: parameters "weight" (ones) and "bias" (zeros) when affine, buffers "running_mean" (zeros),
// "running_var" (ones) and "num_batches_tracked" (I64 scalar, +1 per training forward).
class BatchNorm2d : public Module {
public:
    explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f, bool affine = true);
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "BatchNorm2d"; }

    int64_t num_features;
    float eps, momentum;
    bool affine;
    Tensor weight, bias;  // undefined when !affine
    Tensor running_mean, running_var, num_batches_tracked;
};

// Kernels. x, y, dx, dy: (N, C, HW) contiguous; all per-channel arrays: (C). weight and bias may be null (taken as
// 1 and 0). mean and invstd are outputs of the forward (the statistics used, 1/sqrt(var + eps)) and inputs of the
// backward.
//
// Training: batch statistics; running_mean/running_var are updated in place unless null.
using batchnorm2d_forward_train_fn = void (*)(float* y, float* mean, float* invstd, float* running_mean,
                                              float* running_var, const float* x, const float* weight,
                                              const float* bias, float momentum, float eps, int64_t N, int64_t C,
                                              int64_t HW);
// Eval: mean = running_mean, invstd = 1/sqrt(running_var + eps).
using batchnorm2d_forward_eval_fn = void (*)(float* y, float* mean, float* invstd, const float* x,
                                             const float* weight, const float* bias, const float* running_mean,
                                             const float* running_var, float eps, int64_t N, int64_t C, int64_t HW);
// dweight = sum(dy * xhat) and dbias = sum(dy) per channel are always written (dx needs both); dx only if not null.
// training selects the dx formula (batch statistics depend on x; running statistics do not).
using batchnorm2d_backward_fn = void (*)(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                         const float* mean, const float* invstd, const float* weight, bool training,
                                         int64_t N, int64_t C, int64_t HW);
// num_batches_tracked[0] += 1: the module's batch counter (an I64 scalar buffer), updated where it lives, so that a
// module on a GPU never copies it to the host and back.
using batchnorm2d_count_batch_fn = void (*)(int64_t* num_batches_tracked);
extern KernelTable<batchnorm2d_forward_train_fn> batchnorm2d_forward_train;
extern KernelTable<batchnorm2d_forward_eval_fn> batchnorm2d_forward_eval;
extern KernelTable<batchnorm2d_backward_fn> batchnorm2d_backward;
extern KernelTable<batchnorm2d_count_batch_fn> batchnorm2d_count_batch;

}  // namespace strata
