// swish (SiLU, Ramachandran et al., 2017): the CPU kernels, the op with its gradient, the module.
//
//   forward:   s = 1 / (1 + exp(-x)),   y = x * s
//   backward:  dx = dy * (s + x * s * (1 - s)) = dy * s * (1 + x * (1 - s))
//
// NOTE: for x below about -88, exp(-x) overflows to inf in float: s is then 0 and y and dx are 0 (the limits), not
// NaN, so no clamp is needed.
#include "swish.h"

#include <cmath>

namespace strata {

constinit KernelTable<swish_forward_fn> swish_forward{"swish_forward"};
constinit KernelTable<swish_backward_fn> swish_backward{"swish_backward"};

namespace {

void swish_forward_cpu(float* y, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
    });
}

void swish_backward_cpu(float* dx, const float* dy, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
            float s = 1.0f / (1.0f + std::exp(-x[i]));
            dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
        }
    });
}

}  // namespace

REGISTER_KERNEL(swish_forward, DeviceType::CPU, swish_forward_cpu);
REGISTER_KERNEL(swish_backward, DeviceType::CPU, swish_backward_cpu);

Tensor swish(const Tensor& x_in) {
    check_dtype(x_in, DType::F32, "swish", "input");
    Tensor x = x_in.contiguous();
    Tensor y = empty_like(x);
    swish_forward[x.device()](y.f32(), x.f32(), x.numel());
    if (any_requires_grad({x})) {
        Tensor saved = x.detach();
        record(y, "swish", {x}, [saved](const Tensor& dy_in, const std::vector<bool>&) {
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty_like(saved);
            swish_backward[dy.device()](dx.f32(), dy.f32(), saved.f32(), dx.numel());
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

namespace {
std::shared_ptr<Module> make_swish(Attrs&) { return std::make_shared<Swish>(); }
}  // namespace

REGISTER_LAYER("swish", make_swish);

}  // namespace strata

STRATA_PLUGIN("swish", "1.0")
