// sum: reduces all elements, or one dimension, by addition.
//
// The input x is seen as (outer, len, inner): the reduced dimension has len elements, outer is the product of the
// sizes before it, inner the product of those after it (the full reduction is (1, numel, 1)). Then
//
//   forward:   y[o, i]     = scale * sum_{l < len} x[o, l, i]        y: (outer, inner)
//   backward:  dx[o, l, i] = scale * dy[o, i]                         (dy broadcast back along the reduced dim)
//
// with scale = 1. mean (layers/mean.cpp) is the same computation with scale = 1/len and reuses these kernels.
//
// NOTE on accuracy: a float accumulator loses digits once the running sum dwarfs the terms (adding 0.1 a million
// times in float gives 100958, not 100000). The CPU kernels accumulate in double and round once at the end.
//
// NOTE on determinism: floating-point addition is not associative, so the result depends on the order of the
// additions. Here that order never depends on the number of threads: each output of a dimension reduction is
// summed by one thread from l = 0 up, and the full reduction cuts its input into chunks whose boundaries depend
// only on numel; chunk partial sums are then added in chunk order by one thread.
#include "layers/sum.h"

#include <algorithm>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<sum_forward_fn> sum_forward{"sum_forward"};
constinit KernelTable<sum_backward_fn> sum_backward{"sum_backward"};

namespace {

// The full reduction uses at most kMaxChunks chunks of at least kMinChunk elements (fewer for small inputs), so
// the partial sums fit in a small array on the stack and kernels never allocate.
constexpr int64_t kMaxChunks = 64;
constexpr int64_t kMinChunk = 1 << 15;
// The dimension reduction sums kBlock neighbouring inner positions at once: each step along len then reads
// kBlock consecutive floats (one 64-byte cache line) instead of a single float `inner` elements away.
constexpr int64_t kBlock = 16;
// Roughly how many elements of work make a parallel task worth starting.
constexpr int64_t kGrainElements = 1 << 15;

// y[0] = scale * sum_i x[i], i < n.
void sum_all_cpu(float* y, const float* x, int64_t n, float scale) {
    int64_t chunks = std::min(kMaxChunks, (n + kMinChunk - 1) / kMinChunk);
    double partial[kMaxChunks];
    parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) {
            double s = 0.0;
            for (int64_t i = n * c / chunks, end = n * (c + 1) / chunks; i < end; ++i) s += x[i];
            partial[c] = s;
        }
    });
    double total = 0.0;
    for (int64_t c = 0; c < chunks; ++c) total += partial[c];
    y[0] = float(double(scale) * total);
}

// x: (outer, len, inner), y: (outer, inner).
void sum_forward_cpu(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, float scale) {
    if (outer * inner == 1) {
        sum_all_cpu(y, x, len, scale);
        return;
    }
    // One task = one o and one block of up to kBlock inner positions, summed over the whole of len.
    int64_t blocks = (inner + kBlock - 1) / kBlock;
    int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, len * std::min(inner, kBlock)));
    parallel_for(0, outer * blocks, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
            int64_t o = t / blocks;
            int64_t i0 = (t % blocks) * kBlock, i1 = std::min(i0 + kBlock, inner);
            double acc[kBlock] = {};
            for (int64_t l = 0; l < len; ++l) {
                const float* row = x + (o * len + l) * inner;
                for (int64_t i = i0; i < i1; ++i) acc[i - i0] += row[i];
            }
            for (int64_t i = i0; i < i1; ++i) y[o * inner + i] = float(double(scale) * acc[i - i0]);
        }
    });
}

// dy: (outer, inner), dx: (outer, len, inner).
void sum_backward_cpu(float* dx, const float* dy, int64_t outer, int64_t len, int64_t inner, float scale) {
    int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, inner));
    parallel_for(0, outer * len, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {  // r = o * len + l: one row of inner elements of dx
            const float* d = dy + (r / len) * inner;
            for (int64_t i = 0; i < inner; ++i) dx[r * inner + i] = scale * d[i];
        }
    });
}

}  // namespace

REGISTER_KERNEL(sum_forward, DeviceType::CPU, sum_forward_cpu);
REGISTER_KERNEL(sum_backward, DeviceType::CPU, sum_backward_cpu);

ReductionView reduction_view_all(const Tensor& x) {
    ReductionView v;
    v.len = x.numel();
    return v;  // out_shape {}: a 0-D tensor
}

ReductionView reduction_view_dim(const Tensor& x, int64_t dim, bool keepdim, const char* op) {
    int64_t ndim = x.dim();
    STRATA_CHECK(ndim > 0, op, ": cannot reduce dimension ", dim, " of a 0-D tensor; use ", op,
                 "(x) without a dimension");
    STRATA_CHECK(dim >= -ndim && dim < ndim, op, ": dim ", dim, " is out of range for input of shape ",
                 x.shape_string(), " (expected ", -ndim, " to ", ndim - 1, ")");
    int64_t d = dim < 0 ? dim + ndim : dim;
    ReductionView v;
    for (int64_t k = 0; k < ndim; ++k) {
        int64_t size = x.shape()[size_t(k)];
        if (k < d) v.outer *= size;
        if (k == d) v.len = size;
        if (k > d) v.inner *= size;
        if (k != d) v.out_shape.push_back(size);
        else if (keepdim) v.out_shape.push_back(1);
    }
    return v;
}

Tensor scaled_sum(const Tensor& x_in, const ReductionView& v, float scale, const char* op) {
    Tensor x = x_in.contiguous();
    Tensor y = empty(v.out_shape, DType::F32, x.device());
    sum_forward[x.device()](y.f32(), x.f32(), v.outer, v.len, v.inner, scale);
    if (any_requires_grad({x})) {
        Shape in_shape = x.shape();
        record(y, op, {x}, [v, scale, in_shape](const Tensor& dy_in, const std::vector<bool>&) {
            Tensor dy = dy_in.contiguous();  // (outer, inner) whether or not keepdim kept the reduced dimension
            Tensor dx = empty(in_shape, DType::F32, dy.device());
            sum_backward[dy.device()](dx.f32(), dy.f32(), v.outer, v.len, v.inner, scale);
            return std::vector<Tensor>{dx};
        });
    }
    return y;
}

Tensor sum(const Tensor& x) {
    check_dtype(x, DType::F32, "sum", "input");
    return scaled_sum(x, reduction_view_all(x), 1.0f, "sum");
}

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
    check_dtype(x, DType::F32, "sum", "input");
    return scaled_sum(x, reduction_view_dim(x, dim, keepdim, "sum"), 1.0f, "sum");
}

}  // namespace strata
