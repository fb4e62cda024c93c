// The CUDA twins of synchronized batch norm's kernels (cuda/batchnorm2d.cu: local_stats, merge_stats, normalize,
// backward_dx) against the CPU kernels, run the way the op runs them for three "ranks" of one process: each part of
// the batch (3 images, an empty part, 2 images) gives its stats, the rows are stacked as the all_gather would, and
// merged; then each part is normalised and its dx computed from sums over all parts. On the device each step reads
// the device results of the step before. The op with a communicator of 2 ranks is tested under mpirun
// (tests/mpi/test_sync_batchnorm.cpp).
//
// Tolerance: both sides sum in double in a different order, so the stats agree to about 1e-12 relative and the
// float results to a few ulps; 1e-5 relative to the largest value, as the plain batchnorm2d parity test.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "layers/batchnorm2d.h"

using namespace strata;

namespace {

double* f64(const Tensor& t) { return reinterpret_cast<double*>(t.i64()); }

std::vector<double> doubles(const Tensor& t) {
    std::vector<int64_t> bits = t.to(kCPU).to_vector_i64();
    std::vector<double> out(bits.size());
    std::memcpy(out.data(), bits.data(), bits.size() * sizeof(double));
    return out;
}

struct SyncResult {
    std::vector<double> gathered;
    std::vector<float> mean, invstd, running_mean, running_var, y, dx;
};

// The op's steps on `device` for the parts [0, 3), [3, 3) (empty) and [3, 5) of x. With a residual (defined): the
// fused form, y = max(0, bn(x) + residual), and the backward masks dy by [y > 0].
SyncResult run_sync_kernels(const Tensor& x_cpu, const Tensor& dy_cpu, const Tensor& weight_cpu,
                            const Tensor& residual_cpu, Device device) {
    const bool fused = residual_cpu.defined();
    const int64_t C = x_cpu.size(1), HW = x_cpu.size(2) * x_cpu.size(3);
    const int64_t starts[3] = {0, 3, 3}, counts[3] = {3, 0, 2};
    Tensor x = x_cpu.to(device), dy = dy_cpu.to(device), weight = weight_cpu.to(device);
    Tensor gathered = empty({3, 2 * C + 1}, DType::I64, device);
    for (int r = 0; r < 3; ++r) {
        Tensor part = x.narrow(0, starts[r], counts[r]).contiguous();
        batchnorm2d_local_stats[device](f64(gathered) + r * (2 * C + 1), part.f32(), counts[r], C, HW);
    }
    Tensor mean = empty({C}, DType::F32, device), invstd = empty({C}, DType::F32, device);
    Tensor running_mean = full({C}, 0.5f, DType::F32, device), running_var = full({C}, 2.f, DType::F32, device);
    batchnorm2d_merge_stats[device](mean.f32(), invstd.f32(), running_mean.f32(), running_var.f32(), f64(gathered),
                                    0.1f, 1e-5f, 3, C);
    Tensor y = empty_like(x), dx = empty_like(x);
    Tensor sums = zeros({2 * C}, DType::F32, device);  // [sum dy, sum dy * xhat] over the parts
    for (int r = 0; r < 3; ++r) {
        if (counts[r] == 0) continue;
        Tensor part = x.narrow(0, starts[r], counts[r]).contiguous();
        Tensor part_dy = dy.narrow(0, starts[r], counts[r]).contiguous();
        Tensor part_y = empty_like(part), part_sums = empty({2 * C}, DType::F32, device);
        Tensor part_r = fused ? residual_cpu.narrow(0, starts[r], counts[r]).contiguous().to(device) : Tensor();
        batchnorm2d_normalize[device](part_y.f32(), part.f32(), mean.f32(), invstd.f32(), weight.f32(), nullptr,
                                      fused ? part_r.f32() : nullptr, fused, counts[r], C, HW);
        y.narrow(0, starts[r], counts[r]).copy_(part_y);
        batchnorm2d_backward[device](nullptr, part_sums.f32() + C, part_sums.f32(), part_dy.f32(),
                                     fused ? part_y.f32() : nullptr, part.f32(),
                                     mean.f32(), invstd.f32(), weight.f32(), true, counts[r], C, HW);
        std::vector<float> a = sums.to_vector(), b = part_sums.to_vector();
        for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
        sums = from_vector(a, {2 * C}, device);
    }
    const int64_t M = x_cpu.size(0) * HW;
    for (int r = 0; r < 3; ++r) {
        if (counts[r] == 0) continue;
        Tensor part = x.narrow(0, starts[r], counts[r]).contiguous();
        Tensor part_dy = dy.narrow(0, starts[r], counts[r]).contiguous();
        Tensor part_dx = empty_like(part), part_y = y.narrow(0, starts[r], counts[r]).contiguous();
        batchnorm2d_backward_dx[device](part_dx.f32(), part_dy.f32(), fused ? part_y.f32() : nullptr, part.f32(),
                                        mean.f32(), invstd.f32(), weight.f32(), sums.f32() + C, sums.f32(), M,
                                        counts[r], C, HW);
        dx.narrow(0, starts[r], counts[r]).copy_(part_dx);
    }
    return {doubles(gathered), mean.to_vector(),        invstd.to_vector(), running_mean.to_vector(),
            running_var.to_vector(), y.to_vector(), dx.to_vector()};
}

std::string relative_difference_above(const std::vector<float>& got, const std::vector<float>& want, double rtol) {
    double largest = 1.0;
    for (float w : want) largest = std::max(largest, double(std::fabs(w)));
    return difference_above(got, want, rtol * largest);
}

}  // namespace

TEST_CASE("cuda batchnorm2d: the synchronized batch norm kernels match the CPU, with an empty part, plain and "
          "fused with a residual and the ReLU") {
    if (skip_unless_cuda()) return;
    for (Shape shape : {Shape{5, 3, 4, 7}, Shape{5, 4, 1, 1}}) {
        for (bool fused : {false, true}) {
            INFO("shape ", shape_str(shape), fused ? " fused" : "");
            Generator gen(5);
            std::vector<float> xv = randn(shape, gen).to_vector();
            for (float& v : xv) v = v * 2.f + 50.f;  // |mean| >> std: no cancellation allowed
            Tensor x = from_vector(xv, shape), dy = randn(shape, gen), weight = randn({shape[1]}, gen);
            Tensor residual = fused ? randn(shape, gen) : Tensor();
            SyncResult got = run_sync_kernels(x, dy, weight, residual, kCuda0);
            SyncResult want = run_sync_kernels(x, dy, weight, residual, kCPU);
            REQUIRE(got.gathered.size() == want.gathered.size());
            for (size_t i = 0; i < got.gathered.size(); ++i)
                CHECK(got.gathered[i] == doctest::Approx(want.gathered[i]).epsilon(1e-12));
            CHECK(relative_difference_above(got.mean, want.mean, 1e-6) == "");
            CHECK(relative_difference_above(got.invstd, want.invstd, 1e-6) == "");
            CHECK(relative_difference_above(got.running_mean, want.running_mean, 1e-6) == "");
            CHECK(relative_difference_above(got.running_var, want.running_var, 1e-6) == "");
            CHECK(relative_difference_above(got.y, want.y, 1e-5) == "");
            CHECK(relative_difference_above(got.dx, want.dx, 1e-5) == "");
        }
    }
}
