// batchnorm2d on the GPU: the CUDA twins of the kernels in layers/batchnorm2d.cpp (the math, and the NOTEs on
// precision and on why the backward reads the saved mean/invstd instead of the running statistics, are there).
//
//   training forward:  per channel c, over its M = N*H*W values:  mean_c, var_c (biased), invstd_c = 1/sqrt(var_c+eps),
//                      running statistics updated in place; then y = (x - mean_c) * gamma_c * invstd_c + beta_c
//   eval forward:      mean_c = running_mean_c, invstd_c = 1/sqrt(running_var_c + eps), the same y
//   backward:          dbeta_c = sum dz, dgamma_c = sum dz * xhat  (always: dx needs both), then per element
//                      dx = g (dz - dbeta_c/M - xhat dgamma_c/M) in training, dx = g dz in eval (g = gamma_c invstd_c)
//   fused ReLU:        the forwards end with y = max(0, bn(x) + residual) when asked (batchnorm2d_relu), and the
//                      backwards read dz = [y > 0] dy (dz = dy without the ReLU) as they go
//   count_batch:       num_batches_tracked += 1 (the module's I64 counter, updated on the device)
//
// Mapping to the GPU:
//   - The per-channel statistics (training forward) and the two per-channel sums (backward) are block reductions:
//     one block of 512 threads per channel (grid-stride over channels). Thread t visits the channel's values
//     j = t, t + 512, ... (j = n * HW + i, at offset (n * C + c) * HW + i), accumulates in double, and the block
//     adds the 512 partial sums with warp shuffles and shared memory (cuda/block_reduce.h). No atomics: the result
//     does not depend on timing. As on the CPU the variance is a second pass over (x - mean)^2 in double, so it
//     does not cancel when |mean| >> std; the results differ from the CPU's only by the order of the double
//     additions, i.e. at most in the last bit of the float.
//   - The elementwise passes (y, dx) map each (n, c) plane to blockIdx.x (grid-stride) and its HW values to
//     blockIdx.y and the threads, so the per-channel constants are loaded once per thread and plane and there is no
//     per-element division.
//   - The eval statistics are one thread per channel; count_batch is a single thread.
//
// Bounds: everything is memory-bound. The training forward reads x three times (mean, variance, y) and writes y;
// the backward reads x and dy twice and writes dx. With one block per channel the reductions fill the GPU only
// when C is at least a couple of times the number of SMs (132 on an H100); PSPNet's BNs have C = 64 to 2048, so the
// first stages (C = 64, large H*W) run at about half the SMs. Splitting a channel over several blocks would need
// a scratch buffer for the block partial sums, which the kernel signatures (shared with the CPU) do not carry.
#include <algorithm>

#include "cuda/backend.h"
#include "cuda/block_reduce.h"
#include "layers/batchnorm2d.h"

namespace strata {

namespace {

constexpr int kChannelThreads = 512;  // threads of a per-channel reduction block (a multiple of 32)
constexpr int kPlaneThreads = 256;    // at most this many threads per plane in the elementwise passes

// Walks the M = N * HW values of channel c in steps of blockDim.x: thread t visits j = t, t + blockDim.x, ..., where
// j = n * HW + i is the value at offset (n * C + c) * HW + i. The divisions happen once, in the constructor; a step
// adds blockDim.x = step_n * HW + step_i to (n, i), carries i over into n, and moves the offset along with a few
// additions (the address arithmetic would otherwise cost as much as the memory traffic).
struct ChannelWalk {
    int64_t n, i, offset;         // the position now
    int64_t HW, step_n, step_i;   // blockDim.x = step_n * HW + step_i
    int64_t jump, carry;          // the offset's change for a step, and for a carry of i into n
    __device__ ChannelWalk(int64_t c, int64_t C, int64_t hw)
        : n(threadIdx.x / hw), i(threadIdx.x % hw), offset((n * C + c) * hw + i), HW(hw), step_n(blockDim.x / hw),
          step_i(blockDim.x % hw), jump(step_n * C * hw + step_i), carry((C - 1) * hw) {}
    __device__ void next() {
        n += step_n;
        i += step_i;
        offset += jump;
        if (i >= HW) {  // went past the end of image n's plane: on to image n + 1, HW values back
            i -= HW;
            ++n;
            offset += carry;
        }
    }
};

// The mean and M2 = sum (x - mean)^2 of channel c over its M = N * HW >= 1 values, in double, the same in every
// thread of the block (all of which must call it): pass 1 the mean, pass 2 the squared deviations (no
// cancellation).
__device__ void channel_mean_m2(double& mean, double& m2, double* partials, const float* x, int64_t c, int64_t N,
                                int64_t C, int64_t HW) {
    double sum = 0.0;
    for (ChannelWalk w(c, C, HW); w.n < N; w.next()) sum += x[w.offset];
    mean = block_sum(sum, partials) / double(N * HW);
    double sq = 0.0;
    for (ChannelWalk w(c, C, HW); w.n < N; w.next()) {
        double d = double(x[w.offset]) - mean;
        sq += d * d;
    }
    m2 = block_sum(sq, partials);
}

// mean_c, invstd_c and the running statistics (unbiased) from the mean and M2 of M >= 2 values; one thread.
__device__ void store_channel_stats(float* mean, float* invstd, float* running_mean, float* running_var, int64_t c,
                                    double m, double m2, double M, float momentum, float eps) {
    const double var = m2 / M;
    mean[c] = float(m);
    invstd[c] = float(1.0 / sqrt(var + double(eps)));
    if (running_mean) {
        double unbiased = var * M / (M - 1);
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * float(m);
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * float(unbiased);
    }
}

// Training statistics, one block per channel c (grid-stride). x: (N, C, HW); mean, invstd (outputs),
// running_mean, running_var (in/out, both null or both set): (C). M = N * HW >= 2 (the op checks).
__global__ void batchnorm2d_train_stats_kernel(float* mean, float* invstd, float* running_mean, float* running_var,
                                               const float* x, float momentum, float eps, int64_t N, int64_t C,
                                               int64_t HW) {
    __shared__ double partials[33];
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {  // the same trip count for the whole block
        double m, m2;
        channel_mean_m2(m, m2, partials, x, c, N, C, HW);
        if (threadIdx.x == 0)
            store_channel_stats(mean, invstd, running_mean, running_var, c, m, m2, double(N * HW), momentum, eps);
    }
}

// Synchronized batch norm, this rank's stats: (2C + 1) = [M, mean (C), M2 (C)], one block per channel
// (grid-stride). x: (N, C, HW) with M = N * HW >= 1 (the launcher writes zeros for M = 0).
__global__ void batchnorm2d_local_stats_kernel(double* stats, const float* x, int64_t N, int64_t C, int64_t HW) {
    __shared__ double partials[33];
    if (blockIdx.x == 0 && threadIdx.x == 0) stats[0] = double(N * HW);
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        double m, m2;
        channel_mean_m2(m, m2, partials, x, c, N, C, HW);
        if (threadIdx.x == 0) {
            stats[1 + c] = m;
            stats[1 + C + c] = m2;
        }
    }
}

// Synchronized batch norm, the combined statistics: one thread per channel merges the world rows of gathered
// ((world, 2C + 1), rank r's stats in row r) in rank order with Chan's formula, as the CPU kernel (whose comment
// has the math), and stores mean, invstd and the running statistics (C each; running ones may be null).
__global__ void batchnorm2d_merge_stats_kernel(float* mean, float* invstd, float* running_mean, float* running_var,
                                               const double* gathered, float momentum, float eps, int64_t world,
                                               int64_t C) {
    const int64_t row = 2 * C + 1;
    for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
        double n = 0.0, m = 0.0, m2 = 0.0;
        for (int64_t r = 0; r < world; ++r) {
            const double nb = gathered[r * row], mb = gathered[r * row + 1 + c], m2b = gathered[r * row + 1 + C + c];
            if (nb == 0.0) continue;
            if (n == 0.0) {
                n = nb, m = mb, m2 = m2b;
                continue;
            }
            const double d = mb - m, total = n + nb;
            m += d * nb / total;
            m2 += m2b + d * d * n * nb / total;
            n = total;
        }
        store_channel_stats(mean, invstd, running_mean, running_var, c, m, m2, n, momentum, eps);
    }
}

// Eval statistics, one thread per channel: mean = running_mean, invstd = 1/sqrt(running_var + eps). (C) each.
__global__ void batchnorm2d_eval_stats_kernel(float* mean, float* invstd, const float* running_mean,
                                              const float* running_var, float eps, int64_t C) {
    for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
        mean[c] = running_mean[c];
        invstd[c] = float(1.0 / sqrt(double(running_var[c]) + double(eps)));
    }
}

// y = (x - mean_c) * (gamma_c * invstd_c) + beta_c, + residual (unless null), then max(0, .) if relu (`v <= 0 ? 0 :
// v` keeps a NaN). x, y, residual: (N, C, HW), planes p = n * C + c on blockIdx.x (grid-stride), the HW values of a
// plane on blockIdx.y and the threads. weight, bias may be null.
__global__ void batchnorm2d_normalize_kernel(float* y, const float* x, const float* mean, const float* invstd,
                                             const float* weight, const float* bias, const float* residual, bool relu,
                                             int64_t N, int64_t C, int64_t HW) {
    for (int64_t p = blockIdx.x; p < N * C; p += gridDim.x) {
        const int64_t c = p % C;
        const float m = mean[c];
        const float scale = (weight ? weight[c] : 1.0f) * invstd[c];
        const float shift = bias ? bias[c] : 0.0f;
        const float* xp = x + p * HW;
        float* yp = y + p * HW;
        const float* rp = residual ? residual + p * HW : nullptr;
        for (int64_t i = blockIdx.y * int64_t(blockDim.x) + threadIdx.x; i < HW; i += int64_t(gridDim.y) * blockDim.x) {
            float v = (xp[i] - m) * scale + shift;
            if (rp) v = v + rp[i];
            yp[i] = relu && v <= 0.0f ? 0.0f : v;
        }
    }
}

// The batch norm's own gradient at offset i: dy, or with the fused ReLU (y not null) dy masked by [y > 0] (a NaN y
// passes dy, as relu's backward).
__device__ float masked(const float* y, const float* dy, int64_t i) { return y && y[i] <= 0.0f ? 0.0f : dy[i]; }

// dbias_c = sum dz, dweight_c = sum dz * xhat with xhat = (x - mean_c) * invstd_c and dz = masked(y, dy); one block
// per channel c (grid-stride). dy, y (may be null), x: (N, C, HW); the rest (C).
__global__ void batchnorm2d_backward_sums_kernel(float* dweight, float* dbias, const float* dy, const float* y,
                                                 const float* x, const float* mean, const float* invstd, int64_t N,
                                                 int64_t C, int64_t HW) {
    __shared__ double partials[33];
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        const double m = mean[c], s = invstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (ChannelWalk w(c, C, HW); w.n < N; w.next()) {
            const double d = masked(y, dy, w.offset);
            sum_dy += d;
            sum_dy_xhat += d * ((double(x[w.offset]) - m) * s);
        }
        sum_dy = block_sum(sum_dy, partials);
        sum_dy_xhat = block_sum(sum_dy_xhat, partials);
        if (threadIdx.x == 0) {
            dbias[c] = float(sum_dy);
            dweight[c] = float(sum_dy_xhat);
        }
    }
}

// dx from the per-channel sums over M values (this rank's N * HW, or all ranks' in synchronized batch norm),
// planes laid out as in the normalize kernel. Training: dx = g * (dz - dbias_c/M - xhat * dweight_c/M); eval:
// dx = g * dz; g = gamma_c * invstd_c (weight may be null), dz = masked(y, dy). dx may be dy.
__global__ void batchnorm2d_backward_dx_kernel(float* dx, const float* dy, const float* y, const float* x,
                                               const float* mean, const float* invstd, const float* weight,
                                               const float* dweight, const float* dbias, bool training, int64_t M,
                                               int64_t N, int64_t C, int64_t HW) {
    for (int64_t p = blockIdx.x; p < N * C; p += gridDim.x) {
        const int64_t c = p % C;
        const float g = (weight ? weight[c] : 1.0f) * invstd[c];
        const float m = mean[c], s = invstd[c];
        const float mean_dy = dbias[c] / float(M), mean_dy_xhat = dweight[c] / float(M);
        const float* xp = x + p * HW;
        const float* dyp = dy + p * HW;
        const float* yp = y ? y + p * HW : nullptr;
        float* dxp = dx + p * HW;
        for (int64_t i = blockIdx.y * int64_t(blockDim.x) + threadIdx.x; i < HW; i += int64_t(gridDim.y) * blockDim.x) {
            const float d = masked(yp, dyp, i);
            dxp[i] = training ? g * (d - mean_dy - (xp[i] - m) * s * mean_dy_xhat) : g * d;
        }
    }
}

// num_batches_tracked[0] += 1 (a single thread).
__global__ void batchnorm2d_count_batch_kernel(int64_t* num_batches_tracked) { num_batches_tracked[0] += 1; }

unsigned clamp_grid(int64_t blocks) { return unsigned(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks); }

// The launch shape of the elementwise passes over N*C planes of HW values: up to kPlaneThreads threads per block
// (fewer, in whole warps, for small planes), blockIdx.x over planes, and enough blocks along y that each thread
// handles about 4 values of its plane.
struct PlaneLaunch {
    dim3 grid, block;
};
PlaneLaunch plane_launch(int64_t planes, int64_t HW) {
    int64_t threads = std::min<int64_t>(kPlaneThreads, (HW + 31) / 32 * 32);
    int64_t per_block = threads * 4;
    return {dim3(clamp_grid(planes), clamp_grid((HW + per_block - 1) / per_block)), dim3(unsigned(threads))};
}

void batchnorm2d_forward_train_cuda(float* y, float* mean, float* invstd, float* running_mean, float* running_var,
                                    const float* x, const float* weight, const float* bias, const float* residual,
                                    bool relu, float momentum, float eps, int64_t N, int64_t C, int64_t HW) {
    if (N * C * HW == 0) return;
    CUEMU_LAUNCH(batchnorm2d_train_stats_kernel, clamp_grid(C), kChannelThreads, 0, cuda_current_stream(), mean,
                 invstd, running_mean, running_var, x, momentum, eps, N, C, HW);
    CUDA_CHECK_LAUNCH();
    PlaneLaunch pl = plane_launch(N * C, HW);
    CUEMU_LAUNCH(batchnorm2d_normalize_kernel, pl.grid, pl.block, 0, cuda_current_stream(), y, x, mean, invstd,
                 weight, bias, residual, relu, N, C, HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_forward_eval_cuda(float* y, float* mean, float* invstd, const float* x, const float* weight,
                                   const float* bias, const float* residual, bool relu, const float* running_mean,
                                   const float* running_var, float eps, int64_t N, int64_t C, int64_t HW) {
    if (C == 0) return;
    CUEMU_LAUNCH(batchnorm2d_eval_stats_kernel, cuda_grid_for(C), kCudaBlockSize, 0, cuda_current_stream(), mean,
                 invstd, running_mean, running_var, eps, C);
    CUDA_CHECK_LAUNCH();
    if (N * HW == 0) return;
    PlaneLaunch pl = plane_launch(N * C, HW);
    CUEMU_LAUNCH(batchnorm2d_normalize_kernel, pl.grid, pl.block, 0, cuda_current_stream(), y, x, mean, invstd,
                 weight, bias, residual, relu, N, C, HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_backward_cuda(float* dx, float* dweight, float* dbias, const float* dy, const float* y,
                               const float* x, const float* mean, const float* invstd, const float* weight,
                               bool training, int64_t N, int64_t C, int64_t HW) {
    if (C == 0) return;
    if (N * HW == 0) {  // no values (eval on an empty batch): the sums are 0 and dx is empty
        CUDA_CHECK(cudaMemsetAsync(dweight, 0, size_t(C) * sizeof(float), cuda_current_stream()));
        CUDA_CHECK(cudaMemsetAsync(dbias, 0, size_t(C) * sizeof(float), cuda_current_stream()));
        return;
    }
    CUEMU_LAUNCH(batchnorm2d_backward_sums_kernel, clamp_grid(C), kChannelThreads, 0, cuda_current_stream(), dweight,
                 dbias, dy, y, x, mean, invstd, N, C, HW);
    CUDA_CHECK_LAUNCH();
    if (!dx) return;
    PlaneLaunch pl = plane_launch(N * C, HW);
    CUEMU_LAUNCH(batchnorm2d_backward_dx_kernel, pl.grid, pl.block, 0, cuda_current_stream(), dx, dy, y, x, mean,
                 invstd, weight, dweight, dbias, training, N * HW, N, C, HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_local_stats_cuda(double* stats, const float* x, int64_t N, int64_t C, int64_t HW) {
    if (N * HW == 0) {  // no values: count, means and M2s are all 0 (0.0 is all zero bits)
        CUDA_CHECK(cudaMemsetAsync(stats, 0, size_t(2 * C + 1) * sizeof(double), cuda_current_stream()));
        return;
    }
    CUEMU_LAUNCH(batchnorm2d_local_stats_kernel, clamp_grid(C), kChannelThreads, 0, cuda_current_stream(), stats, x,
                 N, C, HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_merge_stats_cuda(float* mean, float* invstd, float* running_mean, float* running_var,
                                  const double* gathered, float momentum, float eps, int64_t world, int64_t C) {
    if (C == 0) return;
    CUEMU_LAUNCH(batchnorm2d_merge_stats_kernel, cuda_grid_for(C), kCudaBlockSize, 0, cuda_current_stream(), mean,
                 invstd, running_mean, running_var, gathered, momentum, eps, world, C);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_normalize_cuda(float* y, const float* x, const float* mean, const float* invstd,
                                const float* weight, const float* bias, const float* residual, bool relu, int64_t N,
                                int64_t C, int64_t HW) {
    if (N * C * HW == 0) return;
    PlaneLaunch pl = plane_launch(N * C, HW);
    CUEMU_LAUNCH(batchnorm2d_normalize_kernel, pl.grid, pl.block, 0, cuda_current_stream(), y, x, mean, invstd,
                 weight, bias, residual, relu, N, C, HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_backward_dx_cuda(float* dx, const float* dy, const float* y, const float* x, const float* mean,
                                  const float* invstd, const float* weight, const float* sum_dy_xhat,
                                  const float* sum_dy, int64_t M, int64_t N, int64_t C, int64_t HW) {
    if (N * C * HW == 0) return;
    PlaneLaunch pl = plane_launch(N * C, HW);
    CUEMU_LAUNCH(batchnorm2d_backward_dx_kernel, pl.grid, pl.block, 0, cuda_current_stream(), dx, dy, y, x, mean,
                 invstd, weight, sum_dy_xhat, sum_dy, true, M, N, C, HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm2d_count_batch_cuda(int64_t* num_batches_tracked) {
    CUEMU_LAUNCH(batchnorm2d_count_batch_kernel, 1, 1, 0, cuda_current_stream(), num_batches_tracked);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

REGISTER_KERNEL(batchnorm2d_forward_train, DeviceType::CUDA, batchnorm2d_forward_train_cuda);
REGISTER_KERNEL(batchnorm2d_forward_eval, DeviceType::CUDA, batchnorm2d_forward_eval_cuda);
REGISTER_KERNEL(batchnorm2d_backward, DeviceType::CUDA, batchnorm2d_backward_cuda);
REGISTER_KERNEL(batchnorm2d_count_batch, DeviceType::CUDA, batchnorm2d_count_batch_cuda);
REGISTER_KERNEL(batchnorm2d_local_stats, DeviceType::CUDA, batchnorm2d_local_stats_cuda);
REGISTER_KERNEL(batchnorm2d_merge_stats, DeviceType::CUDA, batchnorm2d_merge_stats_cuda);
REGISTER_KERNEL(batchnorm2d_normalize, DeviceType::CUDA, batchnorm2d_normalize_cuda);
REGISTER_KERNEL(batchnorm2d_backward_dx, DeviceType::CUDA, batchnorm2d_backward_dx_cuda);

}  // namespace strata
