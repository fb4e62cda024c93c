// batchnorm2d's CUDA twin (cuda/batchnorm2d.cu) against the CPU kernels: training and eval forward, the updated
// running statistics, and the gradients of x, weight and bias, with and without the affine parameters, at shapes
// that walk a channel in every way the reduction block can (H*W = 1 with N above the block size, H*W above the
// block size, H*W that does not divide it); the module on the device (num_batches_tracked counted there); and the
// op's errors on device tensors.
//
// Tolerance: both sides sum in double and differ only in the order of the additions, so the statistics agree to the
// last bit of the float or one ulp off; y and dx are then the same float formulas (nvcc may contract them into
// FMAs). We allow 1e-5 relative to the largest value of each result (a float ulp is 1.2e-7 relative).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/batchnorm2d.h"

using namespace strata;

namespace {

// "" when got is within rtol * max(1, max |want|) of want everywhere.
std::string scaled_difference_above(const std::vector<float>& got, const std::vector<float>& want, double rtol) {
    double largest = 1.0;
    for (float w : want) largest = std::max(largest, double(std::fabs(w)));
    return difference_above(got, want, rtol * largest);
}

// normal(offset, scale^2) values
Tensor randn_scaled(const Shape& shape, Generator& gen, float scale, float offset) {
    std::vector<float> v = randn(shape, gen).to_vector();
    for (float& e : v) e = e * scale + offset;
    return from_vector(v, shape);
}

struct BnInputs {
    Tensor x, weight, bias, running_mean, running_var, dy;  // on the CPU; weight/bias undefined without affine
};

BnInputs make_inputs(const Shape& shape, bool affine, Generator& gen) {
    const int64_t C = shape[1];
    BnInputs in;
    in.x = randn_scaled(shape, gen, 2.0f, 5.0f);  // |mean| > std: the variance must not cancel
    if (affine) {
        in.weight = randn({C}, gen);
        in.bias = randn({C}, gen);
    }
    in.running_mean = randn_scaled({C}, gen, 0.1f, 0.0f);
    in.running_var = randn_scaled({C}, gen, 0.1f, 1.0f);
    in.dy = randn(shape, gen);
    return in;
}

struct BnResult {
    std::vector<float> y, dx, dweight, dbias, running_mean, running_var;
};

// batchnorm2d on `device` with CPU leaves (their gradients come back through to()); the running statistics are
// device copies, updated in place there, and returned after the call.
BnResult run_bn(const BnInputs& in, bool training, bool with_running, Device device) {
    Tensor x = in.x.clone().requires_grad_();
    Tensor w = in.weight.defined() ? in.weight.clone().requires_grad_() : Tensor();
    Tensor b = in.bias.defined() ? in.bias.clone().requires_grad_() : Tensor();
    Tensor rm = with_running ? in.running_mean.to(device).clone() : Tensor();
    Tensor rv = with_running ? in.running_var.to(device).clone() : Tensor();
    Tensor y = batchnorm2d(x.to(device), w.defined() ? w.to(device) : Tensor(), b.defined() ? b.to(device) : Tensor(),
                           rm, rv, training, 0.1f, 1e-5f);
    STRATA_CHECK(y.device() == device, "run_bn: the output is on ", device_name(y.device()));
    y.backward(in.dy.to(device));
    BnResult r;
    r.y = y.to_vector();
    r.dx = x.grad().to_vector();
    if (w.defined()) r.dweight = w.grad().to_vector();
    if (b.defined()) r.dbias = b.grad().to_vector();
    if (with_running) {
        r.running_mean = rm.to_vector();
        r.running_var = rv.to_vector();
    }
    return r;
}

void check_same(const BnResult& got, const BnResult& want) {
    CHECK(scaled_difference_above(got.y, want.y, 1e-5) == "");
    CHECK(scaled_difference_above(got.dx, want.dx, 1e-5) == "");
    CHECK(scaled_difference_above(got.dweight, want.dweight, 1e-5) == "");
    CHECK(scaled_difference_above(got.dbias, want.dbias, 1e-5) == "");
    CHECK(scaled_difference_above(got.running_mean, want.running_mean, 1e-6) == "");
    CHECK(scaled_difference_above(got.running_var, want.running_var, 1e-6) == "");
}

const std::vector<Shape>& bn_shapes() {
    static const std::vector<Shape> shapes = {
        {2, 3, 5, 7},    // small planes
        {2, 4, 1, 1},    // H*W = 1, M = 2 (PSPNet's bin-1 branch with batch 2)
        {3, 5, 33, 1},   // H*W = 33: a step moves 15 images and 17 pixels, with carries
        {2, 9, 3, 3},    // more channels than the others
    };
    return shapes;
}

// Channels with more values than the 512-thread block (the block walks the channel in several steps). Slow on the
// emulator under the sanitizers, so in their own test case, which the sanitizer runs leave out ([large]).
const std::vector<Shape>& bn_large_shapes() {
    static const std::vector<Shape> shapes = {
        {600, 2, 1, 1},  // H*W = 1 and N above the 512 threads: each step of the walk moves 512 images
        {1, 2, 40, 40},  // H*W = 1600 above the block: a step stays in the image
    };
    return shapes;
}

}  // namespace

static void check_training(const std::vector<Shape>& shapes, Generator& gen) {
    for (const Shape& shape : shapes) {
        for (bool affine : {true, false}) {
            INFO("shape ", shape_str(shape), ", affine ", affine);
            BnInputs in = make_inputs(shape, affine, gen);
            check_same(run_bn(in, true, true, kCuda0), run_bn(in, true, true, kCPU));
            // without running statistics: only the batch statistics
            check_same(run_bn(in, true, false, kCuda0), run_bn(in, true, false, kCPU));
        }
    }
}

TEST_CASE("cuda batchnorm2d: training forward, running statistics and backward match the CPU") {
    if (skip_unless_cuda()) return;
    Generator gen(41);
    check_training(bn_shapes(), gen);
}

TEST_CASE("cuda batchnorm2d: channels longer than a block, in training [large]") {
    if (skip_unless_cuda()) return;
    Generator gen(43);
    check_training(bn_large_shapes(), gen);
}

TEST_CASE("cuda batchnorm2d: eval forward and backward match the CPU") {
    if (skip_unless_cuda()) return;
    Generator gen(42);
    for (const Shape& shape : bn_shapes()) {
        for (bool affine : {true, false}) {
            INFO("shape ", shape_str(shape), ", affine ", affine);
            BnInputs in = make_inputs(shape, affine, gen);
            BnResult got = run_bn(in, false, true, kCuda0), want = run_bn(in, false, true, kCPU);
            check_same(got, want);
            // eval leaves the running statistics alone
            CHECK(got.running_mean == in.running_mean.to_vector());
            CHECK(got.running_var == in.running_var.to_vector());
        }
    }
}

TEST_CASE("cuda batchnorm2d: an empty batch in eval mode gives empty outputs and zero parameter gradients") {
    if (skip_unless_cuda()) return;
    Generator gen(43);
    BnInputs in = make_inputs({0, 3, 4, 4}, true, gen);
    BnResult got = run_bn(in, false, true, kCuda0);
    CHECK(got.y.empty());
    CHECK(got.dweight == std::vector<float>(3, 0.0f));
    CHECK(got.dbias == std::vector<float>(3, 0.0f));
}

TEST_CASE("cuda batchnorm2d: the module trains and counts batches on the device") {
    if (skip_unless_cuda()) return;
    Generator gen(44);
    BatchNorm2d cpu(5), cuda(5);
    cuda.to(kCuda0);
    CHECK(cuda.num_batches_tracked.device() == kCuda0);
    for (int step = 0; step < 3; ++step) {
        Tensor x = randn_scaled({2, 5, 6, 3}, gen, 3.0f, -2.0f);
        CHECK(scaled_difference_above(cuda.forward(x.to(kCuda0)).to_vector(), cpu.forward(x).to_vector(), 1e-5) ==
              "");
    }
    CHECK(cuda.num_batches_tracked.device() == kCuda0);
    CHECK(cuda.num_batches_tracked.to_vector_i64() == std::vector<int64_t>{3});
    CHECK(cpu.num_batches_tracked.to_vector_i64() == std::vector<int64_t>{3});
    CHECK(scaled_difference_above(cuda.running_mean.to_vector(), cpu.running_mean.to_vector(), 1e-6) == "");
    CHECK(scaled_difference_above(cuda.running_var.to_vector(), cpu.running_var.to_vector(), 1e-6) == "");

    cuda.eval();
    cpu.eval();
    Tensor x = randn({3, 5, 2, 2}, gen);
    CHECK(scaled_difference_above(cuda.forward(x.to(kCuda0)).to_vector(), cpu.forward(x).to_vector(), 1e-5) == "");
    CHECK(cuda.num_batches_tracked.to_vector_i64() == std::vector<int64_t>{3});  // eval does not count
}

TEST_CASE("cuda batchnorm2d: errors on device tensors") {
    if (skip_unless_cuda()) return;
    Tensor x = zeros({1, 3, 1, 1}, DType::F32, kCuda0);
    Tensor rm = zeros({3}, DType::F32, kCuda0), rv = ones({3}, DType::F32, kCuda0);
    CHECK_THROWS_WITH_AS(batchnorm2d(x, Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f),
                         doctest::Contains("expected more than 1 value per channel when training"), Error);
    CHECK_THROWS_WITH_AS(batchnorm2d(zeros({2, 3, 2, 2}, DType::F32, kCuda0), Tensor(), Tensor(), zeros({3}),
                                     ones({3}), true, 0.1f, 1e-5f),
                         doctest::Contains("batchnorm2d: tensors are on different devices"), Error);
}
