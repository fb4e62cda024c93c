// add: the elementwise sum of two tensors of the same shape.
//
//   forward:   y = a + b
//   backward:  da = dy,  db = dy
//
// Both partial derivatives are 1, so the backward needs no kernel: it hands the same dy tensor to both inputs.
// NOTE: the two gradients alias one buffer. That is safe because the autograd engine never adds into a gradient
// it was given (it sums into fresh tensors and clones before storing into a leaf's .grad), and add(x, x) gets
// 2 * dy as it should, from the engine's fan-out summation.
//
// NOTE: there is no broadcasting, on purpose: every add in PSPNet (the residual connections) adds two tensors
// of the same shape, and a silent broadcast would hide a shape bug. Mismatched shapes are an error naming both.
#include "layers/add.h"

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<add_forward_fn> add_forward{"add_forward"};

namespace {

void add_forward_cpu(float* y, const float* a, const float* b, int64_t n) {
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
#pragma omp simd  // vectorized: the compiler cannot rule out overlap on its own (y may only coincide with a or b)
        for (int64_t i = lo; i < hi; ++i) y[i] = a[i] + b[i];
    });
}

}  // namespace

REGISTER_KERNEL(add_forward, DeviceType::CPU, add_forward_cpu);

Tensor add(const Tensor& a_in, const Tensor& b_in) {
    check_dtype(a_in, DType::F32, "add", "a");
    check_dtype(b_in, DType::F32, "add", "b");
    STRATA_CHECK(a_in.shape() == b_in.shape(), "add: a and b must have the same shape (no broadcasting), got a ",
                 a_in.shape_string(), " and b ", b_in.shape_string());
    check_same_device(a_in, b_in, "add");
    Tensor a = a_in.contiguous();
    Tensor b = b_in.contiguous();
    Tensor y = empty_like(a);
    add_forward[a.device()](y.f32(), a.f32(), b.f32(), a.numel());
    if (any_requires_grad({a, b})) {
        record(y, "add", {a, b}, [](const Tensor& dy, const std::vector<bool>& needs_grad) {
            return std::vector<Tensor>{needs_grad[0] ? dy : Tensor(), needs_grad[1] ? dy : Tensor()};
        });
    }
    return y;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }

}  // namespace strata
