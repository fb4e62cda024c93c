// batchnorm2d: batch normalisation (Ioffe & Szegedy 2015) of an (N, C, H, W) tensor. Each channel c is
// normalised with statistics over its M = N*H*W values, then scaled and shifted by learned gamma_c (weight) and
// beta_c (bias).
//
//   forward, training:  mean_c   = (1/M) sum x                                     (sums over n, h, w)
//                       var_c    = (1/M) sum (x - mean_c)^2                         (biased: used to normalise)
//                       invstd_c = 1 / sqrt(var_c + eps)
//                       xhat     = (x - mean_c) * invstd_c
//                       y        = gamma_c * xhat + beta_c
//                       running_mean_c = (1 - momentum) * running_mean_c + momentum * mean_c
//                       running_var_c  = (1 - momentum) * running_var_c  + momentum * var_c * M / (M - 1)
//                                                                           (unbiased variance, as PyTorch)
//   forward, eval:      mean_c = running_mean_c, invstd_c = 1 / sqrt(running_var_c + eps), the same y.
//
//   backward, training: mean_c and var_c depend on every x of the channel. With g = gamma_c * invstd_c,
//                       dxhat = gamma * dy, and the chain rule through mean and var:
//                       dx     = g / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))
//                       dgamma = sum(dy * xhat)
//                       dbeta  = sum(dy)
//   backward, eval:     the running statistics are constants:  dx = g * dy;  dgamma, dbeta as above.
//
//   synchronized (a communicator of W > 1 ranks, training; docs/distributed.md): the statistics are those of the
//                       combined batch of all ranks, M = sum_r M_r. Each rank computes (M_r, mean_r, M2_r) per channel
//                       (M2 = sum (x - mean)^2, in double, two passes), the rows are all-gathered and every rank
//                       merges them in rank order 0..W-1 with Chan's formula (merge_stats_cpu), so all ranks get the
//                       same bits and no E[x^2] - E[x]^2 cancels. The backward all-reduces [sum(dy), sum(dy*xhat)]
//                       once and builds dx with the combined M; dgamma and dbeta stay this rank's own sums, to be
//                       reduced over the ranks with every other parameter gradient. A rank may have M_r = 0.
//
//   fused with the ReLU after it (batchnorm2d_relu), optionally adding a residual r before that ReLU:
//                       y  = max(0, z),  z = gamma_c * xhat + beta_c (+ r)
//                       dz = dy * [y > 0]            (the ReLU's mask, read from y: [y > 0] = [z > 0])
//                       dr = dz,  and dx, dgamma, dbeta are the formulas above with dz in place of dy.
//                       The forward is one pass (z never reaches memory); the backward masks dy as it reads it.
//                       It keeps x and y; y is what the next layer keeps anyway, so the fused pair holds one
//                       activation where BN then ReLU held two (BN's x and ReLU's z), and a ResNet block's last
//                       BN + shortcut + ReLU holds one where it held two (BN's x, and ReLU's z = sum).
//
// NOTE: why the fusion is an option of this op and not an op of its own: the statistics, their synchronization over
// ranks, the running-statistics update and the backward's sums are batch norm's, unchanged; the ReLU (and the
// residual) is an epilogue of the elementwise pass and a mask on dy. As a separate op it would duplicate every one of
// those kernels and their CUDA twins; as an option it is two pointer arguments on the existing ones (residual and
// relu forward, y backward), null for plain batch norm, whose results stay bit for bit what they were.
//
// NOTE: training needs M >= 2 (in synchronized batch norm: the combined M): with one value per channel the batch variance is 0 (every output becomes beta) and
// M / (M - 1) is undefined. PyTorch refuses ("Expected more than 1 value per channel when training") and so do we.
// PSPNet's bin-1 pyramid branch pools to 1x1 before its BN, so it has M = N: train with batch size >= 2.
// NOTE: running_mean and running_var are buffers, updated in place by the training forward (also under a
// NoGradGuard; they are never part of the graph). The backward therefore must not read them: the forward kernel
// writes the mean and invstd it actually used into two small (C) tensors, and the backward reads those.
// NOTE: precision and parallelism. M is large (a PSPNet batch of 16 at 60x60 gives M = 57600 per channel), so the
// CPU kernels sum in double and compute the variance in a second pass over (x - mean)^2: the one-pass
// E[x^2] - mean^2 cancels catastrophically when |mean| >> std. The per-channel reductions run in parallel over
// channels (PSPNet's BNs have 64 to 2048 of them); the elementwise passes (y, dx) run in parallel over the N*C
// (n, c) planes, which balances the threads even when C is small. The CUDA twin (cuda/batchnorm2d.cu) gives each
// channel one block with a tree reduction for the sums.
#include "layers/batchnorm2d.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"
#include "layers/relu.h"

namespace strata {

constinit KernelTable<batchnorm2d_forward_train_fn> batchnorm2d_forward_train{"batchnorm2d_forward_train"};
constinit KernelTable<batchnorm2d_forward_eval_fn> batchnorm2d_forward_eval{"batchnorm2d_forward_eval"};
constinit KernelTable<batchnorm2d_backward_fn> batchnorm2d_backward{"batchnorm2d_backward"};
constinit KernelTable<batchnorm2d_count_batch_fn> batchnorm2d_count_batch{"batchnorm2d_count_batch"};
constinit KernelTable<batchnorm2d_local_stats_fn> batchnorm2d_local_stats{"batchnorm2d_local_stats"};
constinit KernelTable<batchnorm2d_merge_stats_fn> batchnorm2d_merge_stats{"batchnorm2d_merge_stats"};
constinit KernelTable<batchnorm2d_normalize_fn> batchnorm2d_normalize{"batchnorm2d_normalize"};
constinit KernelTable<batchnorm2d_backward_dx_fn> batchnorm2d_backward_dx{"batchnorm2d_backward_dx"};

namespace {

// Enough iterations per chunk that each thread gets about 32K elements of work.
int64_t grain_for(int64_t elements_per_iteration) {
    return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, elements_per_iteration));
}

// y = (x - mean_c) * (gamma_c * invstd_c) + beta_c over every (n, c) plane, then the fused epilogue: + residual
// (unless null), then max(0, .) if relu (written `v <= 0 ? 0 : v`, which keeps a NaN, as layers/relu.cpp).
// x, y, residual: (N, C, HW).
void normalize_planes(float* y, const float* x, const float* mean, const float* invstd, const float* weight,
                      const float* bias, const float* residual, bool relu, int64_t N, int64_t C, int64_t HW) {
    parallel_for(0, N * C, grain_for(HW), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) {
            int64_t c = p % C;
            float m = mean[c];
            float scale = (weight ? weight[c] : 1.0f) * invstd[c];
            float shift = bias ? bias[c] : 0.0f;
            const float* xp = x + p * HW;
            float* yp = y + p * HW;
            if (!residual && !relu) {
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) yp[i] = (xp[i] - m) * scale + shift;
            } else if (!residual) {
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) {
                    float v = (xp[i] - m) * scale + shift;
                    yp[i] = v <= 0.0f ? 0.0f : v;
                }
            } else {
                const float* rp = residual + p * HW;
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) {
                    float v = (xp[i] - m) * scale + shift + rp[i];
                    yp[i] = relu && v <= 0.0f ? 0.0f : v;
                }
            }
        }
    });
}

// The mean and M2 = sum (x - mean)^2 of channel c over its M = N * HW values, in double, in two passes (the
// variance from deviations: no cancellation). Both 0 when M = 0. x: (N, C, HW).
void channel_mean_m2(double& mean, double& m2, const float* x, int64_t c, int64_t N, int64_t C, int64_t HW) {
    const int64_t M = N * HW;
    mean = 0;
    m2 = 0;
    if (M == 0) return;
    // `omp simd reduction`: vectorized sums, in an order fixed by the build (not by the thread count)
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < HW; ++i) sum += double(xp[i]);
    }
    mean = sum / double(M);
    double sq = 0;
    for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
#pragma omp simd reduction(+ : sq)
        for (int64_t i = 0; i < HW; ++i) {
            double d = double(xp[i]) - mean;
            sq += d * d;
        }
    }
    m2 = sq;
}

// mean_c, invstd_c and the running statistics from the mean and M2 of M >= 2 values (unbiased variance for the
// running statistics, as PyTorch).
void store_channel_stats(float* mean, float* invstd, float* running_mean, float* running_var, int64_t c, double m,
                         double m2, double M, float momentum, float eps) {
    double var = m2 / M;
    mean[c] = float(m);
    invstd[c] = float(1.0 / std::sqrt(var + double(eps)));
    if (running_mean) {
        double unbiased = var * M / (M - 1);
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * float(m);
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * float(unbiased);
    }
}

// Training. y, x: (N, C, HW); mean, invstd (outputs), running_mean, running_var (in/out, may be null), weight,
// bias (may be null): (C). Needs M = N * HW >= 2 (the op checks).
void batchnorm2d_forward_train_cpu(float* y, float* mean, float* invstd, float* running_mean, float* running_var,
                                   const float* x, const float* weight, const float* bias, const float* residual,
                                   bool relu, float momentum, float eps, int64_t N, int64_t C, int64_t HW) {
    const int64_t M = N * HW;
    parallel_for(0, C, grain_for(M), [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) {
            double m, m2;
            channel_mean_m2(m, m2, x, c, N, C, HW);
            store_channel_stats(mean, invstd, running_mean, running_var, c, m, m2, double(M), momentum, eps);
        }
    });
    normalize_planes(y, x, mean, invstd, weight, bias, residual, relu, N, C, HW);
}

// stats: (2C + 1) = [M, mean (C), M2 (C)]; x: (N, C, HW).
void batchnorm2d_local_stats_cpu(double* stats, const float* x, int64_t N, int64_t C, int64_t HW) {
    stats[0] = double(N * HW);
    parallel_for(0, C, grain_for(N * HW), [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) channel_mean_m2(stats[1 + c], stats[1 + C + c], x, c, N, C, HW);
    });
}

// gathered: (world, 2C + 1), rank r's stats in row r; mean, invstd (outputs), running_mean, running_var (in/out,
// may be null): (C). Chan et al.'s pairwise update, adding the ranks in order 0, 1, ..., so every rank computes the
// same bits: merging (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b), d = mean_b - mean_a, n = n_a + n_b:
//     mean = mean_a + d * n_b / n,   M2 = M2_a + M2_b + d^2 * n_a * n_b / n.
// Ranks with no values are skipped; the first rank with values is taken as it is. The combined count must be >= 2
// (the op checks).
void batchnorm2d_merge_stats_cpu(float* mean, float* invstd, float* running_mean, float* running_var,
                                 const double* gathered, float momentum, float eps, int64_t world, int64_t C) {
    const int64_t row = 2 * C + 1;
    for (int64_t c = 0; c < C; ++c) {
        double n = 0, m = 0, m2 = 0;
        for (int64_t r = 0; r < world; ++r) {
            const double* s = gathered + r * row;
            double nb = s[0], mb = s[1 + c], m2b = s[1 + C + c];
            if (nb == 0) continue;
            if (n == 0) {
                n = nb, m = mb, m2 = m2b;
                continue;
            }
            double d = mb - m, total = n + nb;
            m += d * nb / total;
            m2 += m2b + d * d * n * nb / total;
            n = total;
        }
        store_channel_stats(mean, invstd, running_mean, running_var, c, m, m2, n, momentum, eps);
    }
}

void batchnorm2d_normalize_cpu(float* y, const float* x, const float* mean, const float* invstd, const float* weight,
                               const float* bias, const float* residual, bool relu, int64_t N, int64_t C, int64_t HW) {
    normalize_planes(y, x, mean, invstd, weight, bias, residual, relu, N, C, HW);
}

// Eval. y, x: (N, C, HW); mean, invstd (outputs), weight, bias (may be null), running_mean, running_var: (C).
void batchnorm2d_forward_eval_cpu(float* y, float* mean, float* invstd, const float* x, const float* weight,
                                  const float* bias, const float* residual, bool relu, const float* running_mean,
                                  const float* running_var, float eps, int64_t N, int64_t C, int64_t HW) {
    for (int64_t c = 0; c < C; ++c) {
        mean[c] = running_mean[c];
        invstd[c] = float(1.0 / std::sqrt(double(running_var[c]) + double(eps)));
    }
    normalize_planes(y, x, mean, invstd, weight, bias, residual, relu, N, C, HW);
}

// dx per (n, c) plane from the per-channel sums over M values; training: g * (dz - sum(dz)/M - xhat *
// sum(dz*xhat)/M), eval: g * dz, with dz = dy masked by [y > 0] when y is not null (the ReLU's derivative read from
// its output: [y > 0] = [z > 0]; a NaN y passes dy, as layers/relu.cpp). dx, dy, y, x: (N, C, HW); the
// rest (C).
void dx_planes(float* dx, const float* dy, const float* y, const float* x, const float* mean, const float* invstd,
               const float* weight, const float* sum_dy_xhat, const float* sum_dy, bool training, int64_t M,
               int64_t N, int64_t C, int64_t HW) {
    parallel_for(0, N * C, grain_for(HW), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) {
            int64_t c = p % C;
            float g = (weight ? weight[c] : 1.0f) * invstd[c];
            const float* xp = x + p * HW;
            const float* dyp = dy + p * HW;
            const float* yp = y ? y + p * HW : nullptr;
            float* dxp = dx + p * HW;
            // one loop per case (training or eval, masked or not), each vectorized: a = mean(dz), b = mean(dz * xhat)
            float m = mean[c], s = invstd[c];
            float a = training ? sum_dy[c] / float(M) : 0.0f, b = training ? sum_dy_xhat[c] / float(M) : 0.0f;
            if (!training && yp) {
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) dxp[i] = g * (yp[i] <= 0.0f ? 0.0f : dyp[i]);
            } else if (!training) {
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) dxp[i] = g * dyp[i];
            } else if (yp) {
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i)
                    dxp[i] = g * ((yp[i] <= 0.0f ? 0.0f : dyp[i]) - a - (xp[i] - m) * s * b);
            } else {
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) dxp[i] = g * (dyp[i] - a - (xp[i] - m) * s * b);
            }
        }
    });
}

// dx (may be null), dy, y (may be null), x: (N, C, HW); dweight, dbias (outputs), mean, invstd, weight (may be
// null): (C).
void batchnorm2d_backward_cpu(float* dx, float* dweight, float* dbias, const float* dy, const float* y,
                              const float* x, const float* mean, const float* invstd, const float* weight,
                              bool training, int64_t N, int64_t C, int64_t HW) {
    const int64_t M = N * HW;
    // the per-channel sums: dbeta = sum(dz), dgamma = sum(dz * xhat)
    parallel_for(0, C, grain_for(M), [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) {
            double m = mean[c], s = invstd[c];
            double sum_dy = 0, sum_dy_xhat = 0;  // vectorized sums, in an order fixed by the build
            for (int64_t n = 0; n < N; ++n) {
                const float* xp = x + (n * C + c) * HW;
                const float* dyp = dy + (n * C + c) * HW;
                const float* yp = y ? y + (n * C + c) * HW : nullptr;
                if (yp) {
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
                    for (int64_t i = 0; i < HW; ++i) {
                        double d = yp[i] <= 0.0f ? 0.0 : double(dyp[i]);
                        sum_dy += d;
                        sum_dy_xhat += d * ((double(xp[i]) - m) * s);
                    }
                } else {
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
                    for (int64_t i = 0; i < HW; ++i) {
                        double d = dyp[i];
                        sum_dy += d;
                        sum_dy_xhat += d * ((double(xp[i]) - m) * s);
                    }
                }
            }
            dbias[c] = float(sum_dy);
            dweight[c] = float(sum_dy_xhat);
        }
    });
    if (dx) dx_planes(dx, dy, y, x, mean, invstd, weight, dweight, dbias, training, M, N, C, HW);
}

void batchnorm2d_backward_dx_cpu(float* dx, const float* dy, const float* y, const float* x, const float* mean,
                                 const float* invstd, const float* weight, const float* sum_dy_xhat,
                                 const float* sum_dy, int64_t M, int64_t N, int64_t C, int64_t HW) {
    dx_planes(dx, dy, y, x, mean, invstd, weight, sum_dy_xhat, sum_dy, true, M, N, C, HW);
}

// num_batches_tracked: an I64 scalar.
void batchnorm2d_count_batch_cpu(int64_t* num_batches_tracked) { num_batches_tracked[0] += 1; }

}  // namespace

REGISTER_KERNEL(batchnorm2d_forward_train, DeviceType::CPU, batchnorm2d_forward_train_cpu);
REGISTER_KERNEL(batchnorm2d_forward_eval, DeviceType::CPU, batchnorm2d_forward_eval_cpu);
REGISTER_KERNEL(batchnorm2d_backward, DeviceType::CPU, batchnorm2d_backward_cpu);
REGISTER_KERNEL(batchnorm2d_count_batch, DeviceType::CPU, batchnorm2d_count_batch_cpu);
REGISTER_KERNEL(batchnorm2d_local_stats, DeviceType::CPU, batchnorm2d_local_stats_cpu);
REGISTER_KERNEL(batchnorm2d_merge_stats, DeviceType::CPU, batchnorm2d_merge_stats_cpu);
REGISTER_KERNEL(batchnorm2d_normalize, DeviceType::CPU, batchnorm2d_normalize_cpu);
REGISTER_KERNEL(batchnorm2d_backward_dx, DeviceType::CPU, batchnorm2d_backward_dx_cpu);

namespace {

float* f32_or_null(const Tensor& t) { return t.defined() ? t.f32() : nullptr; }

// weight, bias, running_mean and running_var are either undefined or F32 vectors of shape [C] on x's device.
void check_channel_vector(const Tensor& t, const Tensor& x, const char* arg) {
    if (!t.defined()) return;
    check_dtype(t, DType::F32, "batchnorm2d", arg);
    STRATA_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "batchnorm2d: ", arg, " must have shape [C] = [", x.size(1),
                 "] for input of shape ", x.shape_string(), ", got ", t.shape_string());
    check_same_device(t, x, "batchnorm2d");
}

}  // namespace

namespace {

double* f64(const Tensor& doubles_in_i64) { return reinterpret_cast<double*>(doubles_in_i64.i64()); }

// The combined count of the ranks' stats gathered into (world, 2C + 1) doubles (column 0: each rank's M).
int64_t combined_count(const Tensor& gathered) {
    std::vector<int64_t> bits = gathered.narrow(1, 0, 1).contiguous().to(kCPU).to_vector_i64();
    double total = 0;
    for (int64_t b : bits) {
        double count;
        std::memcpy(&count, &b, sizeof(count));
        total += count;
    }
    return int64_t(total);
}

const char* const kOneValueHint = "the batch variance needs at least two values. Use a batch size >= 2, or eval mode "
                                  "(module.eval()) to normalise with the running statistics. PSPNet's bin-1 pyramid "
                                  "branch pools to 1x1, so training it needs batch size >= 2";

}  // namespace

namespace {

// batchnorm2d (relu false, residual undefined) and batchnorm2d_relu: y = bn(x), or relu(bn(x) + residual).
Tensor batchnorm2d_op(const char* op, const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in,
                      const Tensor& running_mean, const Tensor& running_var, const Tensor& residual_in, bool relu,
                      bool training, float momentum, float eps, Communicator* sync) {
    check_dtype(x_in, DType::F32, op, "input");
    check_dim(x_in, 4, op, "input", "(N,C,H,W)");
    check_channel_vector(weight_in, x_in, "weight");
    check_channel_vector(bias_in, x_in, "bias");
    check_channel_vector(running_mean, x_in, "running_mean");
    check_channel_vector(running_var, x_in, "running_var");
    if (residual_in.defined()) {
        check_dtype(residual_in, DType::F32, op, "residual");
        STRATA_CHECK(residual_in.shape() == x_in.shape(), op, ": residual must have the input's shape ",
                     x_in.shape_string(), ", got ", residual_in.shape_string());
        check_same_device(residual_in, x_in, op);
    }
    STRATA_CHECK(running_mean.defined() == running_var.defined(),
                 op, ": running_mean and running_var must be both defined or both undefined");
    STRATA_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
    STRATA_CHECK(momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ", momentum);
    const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
    STRATA_CHECK(training || running_mean.defined(), op, ": eval mode normalises with the running "
                 "statistics, but running_mean and running_var are undefined; pass them, or use training mode");
    // synchronized: the statistics of all ranks' batches together (and one rank's count is checked after the
    // exchange, against the combined batch)
    const bool synced = training && sync && sync->world_size() > 1;
    STRATA_CHECK(synced || !training || N * HW > 1, op, ": expected more than 1 value per channel when "
                 "training, got input of shape ", x_in.shape_string(), " (N*H*W = ", N * HW, "): ", kOneValueHint);

    Tensor x = x_in.contiguous();
    Tensor weight = weight_in.defined() ? weight_in.contiguous() : Tensor();
    Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
    Tensor residual = residual_in.defined() ? residual_in.contiguous() : Tensor();
    const float* r = f32_or_null(residual);
    Tensor y = empty_like(x);
    Tensor mean = empty({C}, DType::F32, x.device());    // the statistics used, saved for the backward
    Tensor invstd = empty({C}, DType::F32, x.device());
    int64_t M = N * HW;  // the count the statistics are over (all ranks' when synced)
    if (training) {
        Tensor rm = running_mean.defined() ? running_mean.contiguous() : Tensor();
        Tensor rv = running_var.defined() ? running_var.contiguous() : Tensor();
        if (synced) {
            Tensor stats = empty({2 * C + 1}, DType::I64, x.device());  // doubles (communicator.h: CommType::F64)
            batchnorm2d_local_stats[x.device()](f64(stats), x.f32(), N, C, HW);
            Tensor gathered = all_gather(*sync, stats, CommType::F64);
            M = combined_count(gathered);
            STRATA_CHECK(M > 1, op, ": expected more than 1 value per channel when training, got ", M,
                         " over the ", sync->world_size(), " ranks of synchronized batch norm (this rank's input: ",
                         x_in.shape_string(), "): ", kOneValueHint, " in all");
            batchnorm2d_merge_stats[x.device()](mean.f32(), invstd.f32(), f32_or_null(rm), f32_or_null(rv),
                                                f64(gathered), momentum, eps, sync->world_size(), C);
            batchnorm2d_normalize[x.device()](y.f32(), x.f32(), mean.f32(), invstd.f32(), f32_or_null(weight),
                                              f32_or_null(bias), r, relu, N, C, HW);
        } else {
            batchnorm2d_forward_train[x.device()](y.f32(), mean.f32(), invstd.f32(), f32_or_null(rm),
                                                  f32_or_null(rv), x.f32(), f32_or_null(weight), f32_or_null(bias),
                                                  r, relu, momentum, eps, N, C, HW);
        }
        // A strided buffer was updated through a contiguous copy: write the new values back into it.
        if (rm.defined() && !rm.is_same(running_mean)) Tensor(running_mean).copy_(rm);
        if (rv.defined() && !rv.is_same(running_var)) Tensor(running_var).copy_(rv);
    } else {
        Tensor rm = running_mean.contiguous(), rv = running_var.contiguous();
        batchnorm2d_forward_eval[x.device()](y.f32(), mean.f32(), invstd.f32(), x.f32(), f32_or_null(weight),
                                             f32_or_null(bias), r, relu, rm.f32(), rv.f32(), eps, N, C, HW);
    }

    if (any_requires_grad({x, weight, bias, residual})) {
        // Saved: the input and, with the ReLU, the output (for the mask [y > 0]); the output is the next layer's
        // input, which that layer keeps anyway, so the fused op holds no tensor of its own beyond x.
        Tensor xs = x.detach();
        Tensor ys = relu ? y.detach() : Tensor();
        Tensor ws = weight.defined() ? weight.detach() : Tensor();
        Communicator* comm = synced ? sync : nullptr;
        record(y, op, {x, weight, bias, residual},
               [xs, ys, ws, mean, invstd, training, comm, M](const Tensor& dy_in,
                                                              const std::vector<bool>& needs_grad) {
                   const int64_t N = xs.size(0), C = xs.size(1), HW = xs.size(2) * xs.size(3);
                   // The gradient of the residual is dy through the ReLU's mask. When the residual wants it, it is
                   // made once and the batch norm's backward reads it unmasked; otherwise the kernels mask dy as
                   // they read it.
                   // NOTE: dx (or the residual's gradient) could be written over dy when nothing else sees dy
                   // (autograd.h: overwritable), which saves a buffer, but measured on PSPNet-50 it made this
                   // backward 2x and the convolutions' backward 20% slower (docs/PERFORMANCE.md), so both are new.
                   Tensor dy = dy_in.contiguous();
                   Tensor dresidual, mask = ys;
                   if (needs_grad[3]) {
                       dresidual = empty_like(xs);
                       relu_backward[dy.device()](dresidual.f32(), dy.f32(), ys.f32(), dy.numel());
                       dy = dresidual;
                       mask = Tensor();
                   }
                   Tensor dx = needs_grad[0] ? empty_like(xs) : Tensor();
                   // [sum(dz) (C), sum(dz * xhat) (C)]: dbias and dweight, and what dx is built from, so they are
                   // always computed
                   Tensor sums = empty({2 * C}, DType::F32, dy.device());
                   float* sum_dy = sums.f32();
                   float* sum_dy_xhat = sums.f32() + C;
                   if (!comm) {
                       batchnorm2d_backward[dy.device()](f32_or_null(dx), sum_dy_xhat, sum_dy, dy.f32(),
                                                         f32_or_null(mask), xs.f32(), mean.f32(), invstd.f32(),
                                                         f32_or_null(ws), training, N, C, HW);
                   } else {
                       // The parameter gradients are this rank's sums; dx needs the sums over all ranks' dy.
                       batchnorm2d_backward[dy.device()](nullptr, sum_dy_xhat, sum_dy, dy.f32(), f32_or_null(mask),
                                                         xs.f32(), mean.f32(), invstd.f32(), f32_or_null(ws), true,
                                                         N, C, HW);
                       Tensor total = sums.clone();
                       all_reduce_sum(*comm, total);
                       if (dx.defined())
                           batchnorm2d_backward_dx[dy.device()](dx.f32(), dy.f32(), f32_or_null(mask), xs.f32(),
                                                                mean.f32(), invstd.f32(), f32_or_null(ws),
                                                                total.f32() + C, total.f32(), M, N, C, HW);
                   }
                   return std::vector<Tensor>{dx, needs_grad[1] ? sums.narrow(0, C, C).clone() : Tensor(),
                                              needs_grad[2] ? sums.narrow(0, 0, C).clone() : Tensor(), dresidual};
               });
    }
    return y;
}

}  // namespace

Tensor batchnorm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                   const Tensor& running_var, bool training, float momentum, float eps, Communicator* sync) {
    return batchnorm2d_op("batchnorm2d", x, weight, bias, running_mean, running_var, Tensor(), false, training,
                          momentum, eps, sync);
}

Tensor batchnorm2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, bool training, float momentum, float eps, const Tensor& residual,
                        Communicator* sync) {
    return batchnorm2d_op("batchnorm2d_relu", x, weight, bias, running_mean, running_var, residual, true, training,
                          momentum, eps, sync);
}

// ---- the module ----

BatchNorm2d::BatchNorm2d(int64_t num_features_, float eps_, float momentum_, bool affine_)
    : num_features(num_features_), eps(eps_), momentum(momentum_), affine(affine_) {
    STRATA_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
    if (affine) {
        weight = register_parameter("weight", ones({num_features}));
        bias = register_parameter("bias", zeros({num_features}));
    }
    running_mean = register_buffer("running_mean", zeros({num_features}));
    running_var = register_buffer("running_var", ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::I64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
    if (relu) return forward_relu(x);
    Tensor y = batchnorm2d(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, sync.get());
    if (is_training()) count_batch();
    return y;
}

Tensor BatchNorm2d::forward_relu(const Tensor& x, const Tensor& residual) {
    Tensor y = batchnorm2d_relu(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, residual,
                                sync.get());
    if (is_training()) count_batch();
    return y;
}

// PyTorch reads this counter only for momentum = None (a cumulative average, not offered here); we keep it so that
// checkpoints round-trip. A kernel adds the 1 where the counter lives: on a GPU, a read-modify-write through the host
// would cost two synchronizing copies per BN layer and step.
void BatchNorm2d::count_batch() { batchnorm2d_count_batch[num_batches_tracked.device()](num_batches_tracked.i64()); }

int use_sync_batchnorm(Module& root, std::shared_ptr<Communicator> comm) {
    int count = 0;
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&root)) {
        bn->sync = comm;
        ++count;
    }
    for (auto& [name, child] : root.named_children()) count += use_sync_batchnorm(*child, comm);
    return count;
}

int fuse_batchnorm_relu(Module& root) {
    int count = 0;
    std::shared_ptr<Module> previous;
    const bool sequential = dynamic_cast<Sequential*>(&root) != nullptr;
    for (auto& [name, child] : root.named_children()) {
        auto* bn = dynamic_cast<BatchNorm2d*>(previous.get());
        auto* relu = dynamic_cast<ReLU*>(child.get());
        if (sequential && bn && relu && !bn->relu && !relu->fused) {
            bn->relu = true;
            relu->fused = true;
            ++count;
        }
        count += fuse_batchnorm_relu(*child);
        previous = child;
    }
    return count;
}

namespace {

std::shared_ptr<Module> make_batchnorm2d(Attrs& attrs) {
    int64_t num_features = attrs.require_int("num_features");
    float eps = float(attrs.get_float("eps", 1e-5));
    float momentum = float(attrs.get_float("momentum", 0.1));
    bool affine = attrs.get_bool("affine", true);
    auto bn = std::make_shared<BatchNorm2d>(num_features, eps, momentum, affine);
    bn->relu = attrs.get_bool("relu", false);
    return bn;
}

}  // namespace

REGISTER_LAYER("batchnorm2d", make_batchnorm2d);

}  // namespace strata
