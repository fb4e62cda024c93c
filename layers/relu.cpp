// relu: the rectified linear unit, elementwise.
//
//   forward:   y = max(0, x)            NaN stays NaN
//   backward:  dx = dy * [not x <= 0]   (dy where x > 0 or x is NaN, else 0)
//
// NOTE: at x == 0 the derivative is undefined; like PyTorch we use 0 there (the subgradient that keeps dead units
// dead). The backward reads x rather than y: [y > 0] is the same mask, but x is what the op already holds.
// NOTE: both kernels test `x <= 0`, not `x > 0`: every comparison with NaN is false, so `x > 0 ? x : 0` would turn a
// NaN into a clean 0 and hide a poisoned network behind finite numbers. PyTorch keeps the NaN (its relu is
// clamp_min(x, 0), which propagates NaN) and its threshold_backward(dy, x, 0) is `x <= 0 ? 0 : dy`, which passes
// the gradient through a NaN; we do the same, so the NaN reaches the loss and the training loop's checks.
#include "layers/relu.h"

#include "framework/autograd.h"
#include "framework/parallel.h"
#include "framework/registry.h"

namespace strata {

constinit KernelTable<relu_forward_fn> relu_forward{"relu_forward"};
constinit KernelTable<relu_backward_fn> relu_backward{"relu_backward"};

namespace {

// `omp simd`: the loops vectorize (the compiler cannot prove on its own that dx, dy and x do not overlap; they may
// only coincide, dx == dy, which an elementwise loop allows).
void relu_forward_cpu(float* y, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
#pragma omp simd
        for (int64_t i = lo; i < hi; ++i) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
    });
}

void relu_backward_cpu(float* dx, const float* dy, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
#pragma omp simd
        for (int64_t i = lo; i < hi; ++i) dx[i] = x[i] <= 0.0f ? 0.0f : dy[i];
    });
}

}  // namespace

REGISTER_KERNEL(relu_forward, DeviceType::CPU, relu_forward_cpu);
REGISTER_KERNEL(relu_backward, DeviceType::CPU, relu_backward_cpu);

Tensor relu(const Tensor& x_in) {
    check_dtype(x_in, DType::F32, "relu", "input");
    Tensor x = x_in.contiguous();
    Tensor y = empty_like(x);
    relu_forward[x.device()](y.f32(), x.f32(), x.numel());
    if (any_requires_grad({x})) {
        Tensor saved = x.detach();
        record(y, "relu", {x}, [saved](const Tensor& dy_in, const std::vector<bool>&) {
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty_like(saved);
            relu_backward[dy.device()](dx.f32(), dy.f32(), saved.f32(), dx.numel());
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

namespace {
std::shared_ptr<Module> make_relu(Attrs&) { return std::make_shared<ReLU>(); }
}  // namespace

REGISTER_LAYER("relu", make_relu);

}  // namespace strata
