// batchnorm2d: batch normalisation over the (N, H, W) positions of each channel of an (N, C, H, W) tensor.
#pragma once

#include <cstdint>
#include <memory>

#include "framework/communicator.h"
#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// y = (x - mean) / sqrt(var + eps) * weight + bias, per channel. x: (N, C, H, W); weight, bias, running_mean,
// running_var: (C). weight/bias may be undefined (no affine transform). training: mean and biased variance of the
// batch, and running_mean/running_var (if defined) are updated IN PLACE with `momentum` (PyTorch's rule, unbiased
// variance); eval: the running statistics are used and must be defined.
//
// Synchronized batch norm: with a communicator `sync` of more than one rank, in training, the statistics are those
// of the combined batch of all ranks (each rank passes its own part of it, possibly empty; every rank must call
// with the same C, momentum and eps), the running statistics are updated with them (the same on every rank), and
// the backward of x accounts for every rank's dy (one all-reduce). The gradients of weight and bias are this rank's
// own sums, to be summed or averaged over the ranks like every other parameter gradient (docs/distributed.md).
// With sync null, of one rank, or in eval mode it is plain batch norm and calls no collective.
Tensor batchnorm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                   const Tensor& running_var, bool training, float momentum, float eps, Communicator* sync = nullptr);

// Batch norm fused with the ReLU after it, and optionally with a residual added before that ReLU:
//     y = max(0, batchnorm2d(x) + residual)        (residual undefined: y = max(0, batchnorm2d(x)))
// the same arguments and statistics as batchnorm2d (synchronized too). One pass writes y; the backward masks dy by
// [y > 0] as it reads it and keeps only x and y, never the pre-ReLU value (y is the next layer's input, kept by it
// anyway). residual: x's shape and device; its gradient is the masked dy. ResNet's conv-BN-ReLU and its blocks'
// last BN + shortcut + ReLU use it.
Tensor batchnorm2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, bool training, float momentum, float eps,
                        const Tensor& residual = Tensor(), Communicator* sync = nullptr);

// The BatchNorm2d module (registry name "batchnorm2d"; attributes num_features, eps, momentum, affine), with
// PyTorch's names: parameters "weight" (ones) and "bias" (zeros) when affine, buffers "running_mean" (zeros),
// "running_var" (ones) and "num_batches_tracked" (I64 scalar, +1 per training forward). With `relu` set (attribute
// "relu", default false; fuse_batchnorm_relu sets it) forward applies the ReLU too, fused (batchnorm2d_relu).
class BatchNorm2d : public Module {
public:
    explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f, bool affine = true);
    Tensor forward(const Tensor& x) override;
    // max(0, bn(x) + residual) in one op (batchnorm2d_relu), whatever `relu` says; residual may be undefined.
    Tensor forward_relu(const Tensor& x, const Tensor& residual = Tensor());
    std::string type_name() const override { return "BatchNorm2d"; }

    int64_t num_features;
    float eps, momentum;
    bool affine;
    bool relu = false;  // forward = max(0, bn(x)), fused
    Tensor weight, bias;  // undefined when !affine
    Tensor running_mean, running_var, num_batches_tracked;
    // Set: synchronized batch norm over this communicator's ranks (see batchnorm2d above); null: plain.
    std::shared_ptr<Communicator> sync;

private:
    void count_batch();  // num_batches_tracked += 1, after a training forward
};

// Makes every BatchNorm2d in `root` (recursively) synchronized over `comm`, or plain again with comm null. Returns
// how many modules it set. A communicator of one rank is allowed: it behaves as plain batch norm.
int use_sync_batchnorm(Module& root, std::shared_ptr<Communicator> comm);

// Fuses every BatchNorm2d that a Sequential in `root` (recursively) runs right before a ReLU: the BN's `relu` is
// set and the ReLU module, kept in its place so that the children's names ("0", "1", ...) and so every parameter
// name stay as they are, is marked as applied by it (ReLU::fused: it passes its input through). The model computes
// the same values with one pass less forward and backward and one activation fewer saved per pair. Returns how many
// pairs it fused.
int fuse_batchnorm_relu(Module& root);

// Kernels. x, y, dx, dy: (N, C, HW) contiguous; all per-channel arrays: (C). weight and bias may be null (taken as
// 1 and 0). mean and invstd are outputs of the forward (the statistics used, 1/sqrt(var + eps)) and inputs of the
// backward. The forwards end with the fused epilogue: y = bn(x) + residual (unless null), then max(0, y) if relu.
// The backwards take the output y for the ReLU's mask: null, none (dy is the batch norm's own gradient); else the
// batch norm's gradient is dz = [y > 0] dy (NaN passes, as in relu), formed as dy is read. dx may be dy (in place).
//
// Training: batch statistics; running_mean/running_var are updated in place unless null.
using batchnorm2d_forward_train_fn = void (*)(float* y, float* mean, float* invstd, float* running_mean,
                                              float* running_var, const float* x, const float* weight,
                                              const float* bias, const float* residual, bool relu, float momentum,
                                              float eps, int64_t N, int64_t C, int64_t HW);
// Eval: mean = running_mean, invstd = 1/sqrt(running_var + eps).
using batchnorm2d_forward_eval_fn = void (*)(float* y, float* mean, float* invstd, const float* x,
                                             const float* weight, const float* bias, const float* residual, bool relu,
                                             const float* running_mean, const float* running_var, float eps,
                                             int64_t N, int64_t C, int64_t HW);
// dweight = sum(dz * xhat) and dbias = sum(dz) per channel are always written (dx needs both); dx only if not null.
// training selects the dx formula (batch statistics depend on x; running statistics do not).
using batchnorm2d_backward_fn = void (*)(float* dx, float* dweight, float* dbias, const float* dy, const float* y,
                                         const float* x, const float* mean, const float* invstd, const float* weight,
                                         bool training, int64_t N, int64_t C, int64_t HW);
// num_batches_tracked[0] += 1: the module's batch counter (an I64 scalar buffer), updated where it lives, so that a
// module on a GPU never copies it to the host and back.
using batchnorm2d_count_batch_fn = void (*)(int64_t* num_batches_tracked);
// Synchronized batch norm, in three steps around an all_gather of each rank's stats (layout (2C + 1) doubles:
// [M, mean_0..mean_{C-1}, M2_0..M2_{C-1}] with M = N * HW and M2_c = sum (x - mean_c)^2; mean and M2 are 0 when
// M = 0):
//   local_stats: this rank's stats.
//   merge_stats: gathered (world, 2C + 1) -> mean, invstd of the combined batch (Chan's merge in rank order, in
//                double), running statistics updated in place unless null (unbiased with the combined count).
//   normalize:   y = (x - mean_c) * gamma_c * invstd_c + beta_c, and the epilogue.
using batchnorm2d_local_stats_fn = void (*)(double* stats, const float* x, int64_t N, int64_t C, int64_t HW);
using batchnorm2d_merge_stats_fn = void (*)(float* mean, float* invstd, float* running_mean, float* running_var,
                                            const double* gathered, float momentum, float eps, int64_t world,
                                            int64_t C);
using batchnorm2d_normalize_fn = void (*)(float* y, const float* x, const float* mean, const float* invstd,
                                          const float* weight, const float* bias, const float* residual, bool relu,
                                          int64_t N, int64_t C, int64_t HW);
// The training dx of synchronized batch norm from the sums over all ranks and the combined count M:
// dx = gamma_c * invstd_c * (dz - sum_dy_c / M - xhat * sum_dy_xhat_c / M). (The sums come from batchnorm2d_backward
// with dx null, summed over the ranks.)
using batchnorm2d_backward_dx_fn = void (*)(float* dx, const float* dy, const float* y, const float* x,
                                            const float* mean, const float* invstd, const float* weight,
                                            const float* sum_dy_xhat, const float* sum_dy, int64_t M, int64_t N,
                                            int64_t C, int64_t HW);
extern KernelTable<batchnorm2d_local_stats_fn> batchnorm2d_local_stats;
extern KernelTable<batchnorm2d_merge_stats_fn> batchnorm2d_merge_stats;
extern KernelTable<batchnorm2d_normalize_fn> batchnorm2d_normalize;
extern KernelTable<batchnorm2d_backward_dx_fn> batchnorm2d_backward_dx;
extern KernelTable<batchnorm2d_forward_train_fn> batchnorm2d_forward_train;
extern KernelTable<batchnorm2d_forward_eval_fn> batchnorm2d_forward_eval;
extern KernelTable<batchnorm2d_backward_fn> batchnorm2d_backward;
extern KernelTable<batchnorm2d_count_batch_fn> batchnorm2d_count_batch;

}  // namespace strata
