// mul: scales a tensor by a constant float.
//
//   forward:   y = s * x
//   backward:  dx = s * dy
//
// The backward is the forward applied to dy, so one kernel (mul_forward) serves both. The scalar is a plain float,
// not a tensor: it gets no gradient (PSPNet uses it for the auxiliary loss weight, loss = main + 0.4 * aux).
#include "layers/mul.h"

#include "framework/autograd.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<mul_forward_fn> mul_forward{"mul_forward"};

namespace {

void mul_forward_cpu(float* y, const float* x, float s, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) y[i] = s * x[i];
    });
}

}  // namespace

REGISTER_KERNEL(mul_forward, DeviceType::CPU, mul_forward_cpu);

Tensor mul(const Tensor& x_in, float s) {
    check_dtype(x_in, DType::F32, "mul", "input");
    Tensor x = x_in.contiguous();
    Tensor y = empty_like(x);
    mul_forward[x.device()](y.f32(), x.f32(), s, x.numel());
    if (any_requires_grad({x})) {
        record(y, "mul", {x}, [s](const Tensor& dy_in, const std::vector<bool>&) {
            Tensor dy = dy_in.contiguous();
            Tensor dx = empty_like(dy);
            mul_forward[dy.device()](dx.f32(), dy.f32(), s, dy.numel());
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

Tensor operator*(const Tensor& x, float s) { return mul(x, s); }
Tensor operator*(float s, const Tensor& x) { return mul(x, s); }

}  // namespace strata
