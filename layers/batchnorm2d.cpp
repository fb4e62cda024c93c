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
// NOTE: training needs M >= 2: with one value per channel the batch variance is 0 (every output becomes beta) and
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

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<batchnorm2d_forward_train_fn> batchnorm2d_forward_train{"batchnorm2d_forward_train"};
constinit KernelTable<batchnorm2d_forward_eval_fn> batchnorm2d_forward_eval{"batchnorm2d_forward_eval"};
constinit KernelTable<batchnorm2d_backward_fn> batchnorm2d_backward{"batchnorm2d_backward"};
constinit KernelTable<batchnorm2d_count_batch_fn> batchnorm2d_count_batch{"batchnorm2d_count_batch"};

namespace {

// Enough iterations per chunk that each thread gets about 32K elements of work.
int64_t grain_for(int64_t elements_per_iteration) {
    return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, elements_per_iteration));
}

// y = (x - mean_c) * (gamma_c * invstd_c) + beta_c over every (n, c) plane. x, y: (N, C, HW).
void normalize_planes(float* y, const float* x, const float* mean, const float* invstd, const float* weight,
                      const float* bias, int64_t N, int64_t C, int64_t HW) {
    parallel_for(0, N * C, grain_for(HW), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) {
            int64_t c = p % C;
            float m = mean[c];
            float scale = (weight ? weight[c] : 1.0f) * invstd[c];
            float shift = bias ? bias[c] : 0.0f;
            const float* xp = x + p * HW;
            float* yp = y + p * HW;
            for (int64_t i = 0; i < HW; ++i) yp[i] = (xp[i] - m) * scale + shift;
        }
    });
}

// Training. y, x: (N, C, HW); mean, invstd (outputs), running_mean, running_var (in/out, may be null), weight,
// bias (may be null): (C). Needs M = N * HW >= 2 (the op checks).
void batchnorm2d_forward_train_cpu(float* y, float* mean, float* invstd, float* running_mean, float* running_var,
                                   const float* x, const float* weight, const float* bias, float momentum, float eps,
                                   int64_t N, int64_t C, int64_t HW) {
    const int64_t M = N * HW;
    parallel_for(0, C, grain_for(M), [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) {
            // pass 1: the mean
            double sum = 0;
            for (int64_t n = 0; n < N; ++n) {
                const float* xp = x + (n * C + c) * HW;
                for (int64_t i = 0; i < HW; ++i) sum += xp[i];
            }
            double m = sum / double(M);
            // pass 2: the biased variance, from deviations (no cancellation)
            double sq = 0;
            for (int64_t n = 0; n < N; ++n) {
                const float* xp = x + (n * C + c) * HW;
                for (int64_t i = 0; i < HW; ++i) {
                    double d = double(xp[i]) - m;
                    sq += d * d;
                }
            }
            double var = sq / double(M);
            mean[c] = float(m);
            invstd[c] = float(1.0 / std::sqrt(var + double(eps)));
            if (running_mean) {
                double unbiased = var * double(M) / double(M - 1);
                running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * float(m);
                running_var[c] = (1.0f - momentum) * running_var[c] + momentum * float(unbiased);
            }
        }
    });
    normalize_planes(y, x, mean, invstd, weight, bias, N, C, HW);
}

// Eval. y, x: (N, C, HW); mean, invstd (outputs), weight, bias (may be null), running_mean, running_var: (C).
void batchnorm2d_forward_eval_cpu(float* y, float* mean, float* invstd, const float* x, const float* weight,
                                  const float* bias, const float* running_mean, const float* running_var, float eps,
                                  int64_t N, int64_t C, int64_t HW) {
    for (int64_t c = 0; c < C; ++c) {
        mean[c] = running_mean[c];
        invstd[c] = float(1.0 / std::sqrt(double(running_var[c]) + double(eps)));
    }
    normalize_planes(y, x, mean, invstd, weight, bias, N, C, HW);
}

// dx (may be null), dy, x: (N, C, HW); dweight, dbias (outputs), mean, invstd, weight (may be null): (C).
void batchnorm2d_backward_cpu(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                              const float* mean, const float* invstd, const float* weight, bool training, int64_t N,
                              int64_t C, int64_t HW) {
    const int64_t M = N * HW;
    // the per-channel sums: dbeta = sum(dy), dgamma = sum(dy * xhat)
    parallel_for(0, C, grain_for(M), [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) {
            double m = mean[c], s = invstd[c];
            double sum_dy = 0, sum_dy_xhat = 0;
            for (int64_t n = 0; n < N; ++n) {
                const float* xp = x + (n * C + c) * HW;
                const float* dyp = dy + (n * C + c) * HW;
                for (int64_t i = 0; i < HW; ++i) {
                    sum_dy += dyp[i];
                    sum_dy_xhat += double(dyp[i]) * ((double(xp[i]) - m) * s);
                }
            }
            dbias[c] = float(sum_dy);
            dweight[c] = float(sum_dy_xhat);
        }
    });
    if (!dx) return;
    // dx per (n, c) plane; training: g * (dy - sum(dy)/M - xhat * sum(dy*xhat)/M), eval: g * dy
    parallel_for(0, N * C, grain_for(HW), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) {
            int64_t c = p % C;
            float g = (weight ? weight[c] : 1.0f) * invstd[c];
            const float* xp = x + p * HW;
            const float* dyp = dy + p * HW;
            float* dxp = dx + p * HW;
            if (!training) {
                for (int64_t i = 0; i < HW; ++i) dxp[i] = g * dyp[i];
                continue;
            }
            float m = mean[c], s = invstd[c];
            float mean_dy = dbias[c] / float(M), mean_dy_xhat = dweight[c] / float(M);
            for (int64_t i = 0; i < HW; ++i) dxp[i] = g * (dyp[i] - mean_dy - (xp[i] - m) * s * mean_dy_xhat);
        }
    });
}

// num_batches_tracked: an I64 scalar.
void batchnorm2d_count_batch_cpu(int64_t* num_batches_tracked) { num_batches_tracked[0] += 1; }

}  // namespace

REGISTER_KERNEL(batchnorm2d_forward_train, DeviceType::CPU, batchnorm2d_forward_train_cpu);
REGISTER_KERNEL(batchnorm2d_forward_eval, DeviceType::CPU, batchnorm2d_forward_eval_cpu);
REGISTER_KERNEL(batchnorm2d_backward, DeviceType::CPU, batchnorm2d_backward_cpu);
REGISTER_KERNEL(batchnorm2d_count_batch, DeviceType::CPU, batchnorm2d_count_batch_cpu);

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

Tensor batchnorm2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, const Tensor& running_mean,
                   const Tensor& running_var, bool training, float momentum, float eps) {
    check_dtype(x_in, DType::F32, "batchnorm2d", "input");
    check_dim(x_in, 4, "batchnorm2d", "input", "(N,C,H,W)");
    check_channel_vector(weight_in, x_in, "weight");
    check_channel_vector(bias_in, x_in, "bias");
    check_channel_vector(running_mean, x_in, "running_mean");
    check_channel_vector(running_var, x_in, "running_var");
    STRATA_CHECK(running_mean.defined() == running_var.defined(),
                 "batchnorm2d: running_mean and running_var must be both defined or both undefined");
    STRATA_CHECK(eps >= 0, "batchnorm2d: eps must be >= 0, got ", eps);
    STRATA_CHECK(momentum >= 0 && momentum <= 1, "batchnorm2d: momentum must be in [0, 1], got ", momentum);
    const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
    STRATA_CHECK(training || running_mean.defined(), "batchnorm2d: eval mode normalises with the running "
                 "statistics, but running_mean and running_var are undefined; pass them, or use training mode");
    STRATA_CHECK(!training || N * HW > 1, "batchnorm2d: expected more than 1 value per channel when training, got "
                 "input of shape ", x_in.shape_string(), " (N*H*W = ", N * HW, "): the batch variance needs at least "
                 "two values. Use a batch size >= 2, or eval mode (module.eval()) to normalise with the running "
                 "statistics. PSPNet's bin-1 pyramid branch pools to 1x1, so training it needs batch size >= 2");

    Tensor x = x_in.contiguous();
    Tensor weight = weight_in.defined() ? weight_in.contiguous() : Tensor();
    Tensor bias = bias_in.defined() ? bias_in.contiguous() : Tensor();
    Tensor y = empty_like(x);
    Tensor mean = empty({C}, DType::F32, x.device());    // the statistics used, saved for the backward
    Tensor invstd = empty({C}, DType::F32, x.device());
    if (training) {
        Tensor rm = running_mean.defined() ? running_mean.contiguous() : Tensor();
        Tensor rv = running_var.defined() ? running_var.contiguous() : Tensor();
        batchnorm2d_forward_train[x.device()](y.f32(), mean.f32(), invstd.f32(), f32_or_null(rm), f32_or_null(rv),
                                              x.f32(), f32_or_null(weight), f32_or_null(bias), momentum, eps, N, C,
                                              HW);
        // A strided buffer was updated through a contiguous copy: write the new values back into it.
        if (rm.defined() && !rm.is_same(running_mean)) Tensor(running_mean).copy_(rm);
        if (rv.defined() && !rv.is_same(running_var)) Tensor(running_var).copy_(rv);
    } else {
        Tensor rm = running_mean.contiguous(), rv = running_var.contiguous();
        batchnorm2d_forward_eval[x.device()](y.f32(), mean.f32(), invstd.f32(), x.f32(), f32_or_null(weight),
                                             f32_or_null(bias), rm.f32(), rv.f32(), eps, N, C, HW);
    }

    if (any_requires_grad({x, weight, bias})) {
        Tensor xs = x.detach();
        Tensor ws = weight.defined() ? weight.detach() : Tensor();
        record(y, "batchnorm2d", {x, weight, bias},
               [xs, ws, mean, invstd, training](const Tensor& dy_in, const std::vector<bool>& needs_grad) {
                   Tensor dy = dy_in.contiguous();
                   const int64_t N = xs.size(0), C = xs.size(1), HW = xs.size(2) * xs.size(3);
                   Tensor dx = needs_grad[0] ? empty_like(xs) : Tensor();
                   // dweight and dbias are the sums dx is built from, so they are always computed
                   Tensor dweight = empty({C}, DType::F32, dy.device());
                   Tensor dbias = empty({C}, DType::F32, dy.device());
                   batchnorm2d_backward[dy.device()](f32_or_null(dx), dweight.f32(), dbias.f32(), dy.f32(), xs.f32(),
                                                     mean.f32(), invstd.f32(), f32_or_null(ws), training, N, C, HW);
                   return std::vector<Tensor>{dx, needs_grad[1] ? dweight : Tensor(),
                                              needs_grad[2] ? dbias : Tensor()};
               });
    }
    return y;
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
    Tensor y = batchnorm2d(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
    if (is_training()) {
        // PyTorch reads this counter only for momentum = None (a cumulative average, not offered here); we keep it
        // so that checkpoints round-trip. A kernel adds the 1 where the counter lives: on a GPU, a read-modify-write
        // through the host would cost two synchronizing copies per BN layer and step.
        batchnorm2d_count_batch[num_batches_tracked.device()](num_batches_tracked.i64());
    }
    return y;
}

namespace {

std::shared_ptr<Module> make_batchnorm2d(Attrs& attrs) {
    int64_t num_features = attrs.require_int("num_features");
    float eps = float(attrs.get_float("eps", 1e-5));
    float momentum = float(attrs.get_float("momentum", 0.1));
    bool affine = attrs.get_bool("affine", true);
    return std::make_shared<BatchNorm2d>(num_features, eps, momentum, affine);
}

}  // namespace

REGISTER_LAYER("batchnorm2d", make_batchnorm2d);

}  // namespace strata
