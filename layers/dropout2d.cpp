// dropout2d: channel-wise dropout (Tompson et al. 2015, "spatial dropout"). Neighbouring pixels of a feature map
// are strongly correlated, so dropping single pixels barely regularises a conv net; dropout2d drops whole
// (n, c) planes instead. PSPNet uses it with p = 0.1 before its classifier and in its aux head.
//
//   forward (training, 0 < p <= 1):  keep[n, c] = u(n, c) >= p,  u(n, c) = uniform in [0, 1)
//                                    y[n, c, h, w] = x[n, c, h, w] * keep[n, c] / (1 - p)
//   forward (eval, or p == 0):       y = x (the input tensor itself is returned)
//   backward:                        dx = dy * keep[n, c] / (1 - p)
//
// The 1/(1-p) scaling keeps E[y] = x, so eval needs no rescaling. Like PyTorch, y = x * factor with a factor of 0
// for dropped planes, so an inf or NaN in x still shows up (as NaN) in y.
//
// Random numbers: each call draws ONE 64-bit key from the Generator, and u(n, c) =
// u64_to_unit_float(random_u64(key, n*C + c)) (framework/random.h). The mask is thus a pure function of (key, n, c):
// the kernel takes the key, not a Generator, and a CUDA twin computes exactly the same mask with one thread per
// plane. The generator advances by one draw per training call with p > 0, whatever the tensor's size.
//
// NOTE: the backward recomputes the mask from the saved key instead of storing it. The op is linear in x with a
// per-plane factor, so its backward is the forward kernel applied to dy: one kernel serves both directions (and
// the CUDA twin has one kernel to write), and the graph holds 8 bytes instead of an (N, C) tensor. Recomputing costs
// one hash per plane, nothing next to the H*W multiplies per plane.
// NOTE: p == 1 drops every plane (u < 1 always) and gives zeros, with zero gradient, as in PyTorch.
#include "layers/dropout2d.h"

#include <algorithm>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<dropout2d_forward_fn> dropout2d_forward{"dropout2d_forward"};

namespace {

// y, x: (N, C, HW). Parallel over the N*C planes, about 32K elements per chunk.
void dropout2d_forward_cpu(float* y, const float* x, uint64_t key, float p, int64_t N, int64_t C, int64_t HW) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;  // p == 1 keeps nothing: any value would do
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, HW));
    parallel_for(0, N * C, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t plane = lo; plane < hi; ++plane) {  // plane = n * C + c
            bool keep = u64_to_unit_float(random_u64(key, uint64_t(plane))) >= p;
            float factor = keep ? scale : 0.0f;
            const float* xp = x + plane * HW;
            float* yp = y + plane * HW;
            for (int64_t i = 0; i < HW; ++i) yp[i] = xp[i] * factor;
        }
    });
}

}  // namespace

REGISTER_KERNEL(dropout2d_forward, DeviceType::CPU, dropout2d_forward_cpu);

Tensor dropout2d(const Tensor& x_in, float p, bool training, Generator& gen) {
    check_dtype(x_in, DType::F32, "dropout2d", "input");
    check_dim(x_in, 4, "dropout2d", "input", "(N,C,H,W)");
    STRATA_CHECK(p >= 0.0f && p <= 1.0f, "dropout2d: p must be in [0, 1], got ", p);  // NaN fails too
    if (!training || p == 0.0f) return x_in;

    const uint64_t key = gen.next_u64();
    const int64_t N = x_in.size(0), C = x_in.size(1), HW = x_in.size(2) * x_in.size(3);
    Tensor x = x_in.contiguous();
    Tensor y = empty_like(x);
    dropout2d_forward[x.device()](y.f32(), x.f32(), key, p, N, C, HW);
    if (any_requires_grad({x})) {
        record(y, "dropout2d", {x}, [key, p, N, C, HW](const Tensor& dy_in, const std::vector<bool>&) {
            // dx = dy * keep / (1 - p): the forward kernel on dy, with the same key and so the same mask
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty_like(dy);
            dropout2d_forward[dy.device()](dx.f32(), dy.f32(), key, p, N, C, HW);
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

Tensor dropout2d(const Tensor& x, float p, bool training) { return dropout2d(x, p, training, default_generator()); }

Dropout2d::Dropout2d(float p_) : p(p_) {
    STRATA_CHECK(p >= 0.0f && p <= 1.0f, "Dropout2d: p must be in [0, 1], got ", p);
}

namespace {

std::shared_ptr<Module> make_dropout2d(Attrs& attrs) {
    return std::make_shared<Dropout2d>(float(attrs.get_float("p", 0.5)));
}

}  // namespace

REGISTER_LAYER("dropout2d", make_dropout2d);

}  // namespace strata
