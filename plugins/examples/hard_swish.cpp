// hard_swish: the example plugin with its own kernels (docs/plugins.md).
//
//   forward:   y = x * min(max(x + 3, 0), 6) / 6       (0 for x <= -3, x for x >= 3)
//   backward:  dx = dy * (x < -3 ? 0 : x > 3 ? 1 : (2x + 3) / 6)
//
// NOTE: at x = -3 and x = 3 the derivative jumps (0 to -1/2, 3/2 to 1); like PyTorch's hardswish_backward we use the
// inner piece's value there ((2x + 3) / 6).
#include "plugins/examples/hard_swish.h"

namespace strata {

constinit KernelTable<hard_swish_forward_fn> hard_swish_forward{"hard_swish_forward"};
constinit KernelTable<hard_swish_backward_fn> hard_swish_backward{"hard_swish_backward"};

namespace {

void hard_swish_forward_cpu(float* y, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) y[i] = x[i] * std::min(std::max(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f;
    });
}

void hard_swish_backward_cpu(float* dx, const float* dy, const float* x, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i)
            dx[i] = x[i] < -3.0f ? 0.0f : x[i] > 3.0f ? dy[i] : dy[i] * (2.0f * x[i] + 3.0f) / 6.0f;
    });
}

}  // namespace

REGISTER_KERNEL(hard_swish_forward, DeviceType::CPU, hard_swish_forward_cpu);
REGISTER_KERNEL(hard_swish_backward, DeviceType::CPU, hard_swish_backward_cpu);

Tensor hard_swish(const Tensor& x_in) {
    check_dtype(x_in, DType::F32, "hard_swish", "input");
    Tensor x = x_in.contiguous();
    Tensor y = empty_like(x);
    hard_swish_forward[x.device()](y.f32(), x.f32(), x.numel());
    if (any_requires_grad({x})) {
        Tensor saved = x.detach();
        record(y, "hard_swish", {x}, [saved](const Tensor& dy_in, const std::vector<bool>&) {
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty_like(saved);
            hard_swish_backward[dy.device()](dx.f32(), dy.f32(), saved.f32(), dx.numel());
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

namespace {
std::shared_ptr<Module> make_hard_swish(Attrs&) { return std::make_shared<HardSwish>(); }
}  // namespace

REGISTER_LAYER("hard_swish", make_hard_swish);

}  // namespace strata

STRATA_PLUGIN("hard_swish", "1.0")
