// sgd_update's CUDA twin (cuda/sgd_update.cu) through the SGD optimizer (framework/optimizer.h): the same
// parameters and gradients on the CPU and on the device, a few steps with a changing learning rate, two parameter
// groups (LR multiplier, own weight decay), and every variant of the rule: no momentum (no buffer), momentum with
// and without dampening, nesterov. Parameters and momentum buffers are compared after every step.
//
// Tolerance. Per element a step does at most 8 roundings (d = g + wd p, v = m v + (1 - dampening) d, nesterov's
// d + m v, p - lr d) on values bounded by M = the largest |p|, |v| or |g| (+1); either compiler may fuse a
// multiply-add, so each step can differ by 8 eps M. A difference from an earlier step is carried into the next
// multiplied by at most 1 + momentum < 2 (v) or 1 + lr wd (p), so after step s the bound is 8 (2^s - 1) eps M. A
// wrong rule (a missing weight decay, dampening applied on the first step) is off by ~lr * |g|, far more.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/optimizer.h"
#include "framework/random.h"
#include "framework/tensor.h"

using namespace strata;

namespace {

double max_abs(const std::vector<float>& v) {
    double m = 0;
    for (float e : v) m = std::max(m, double(std::fabs(e)));
    return m;
}

void check_sgd(const SGDOptions& options, Generator& gen) {
    INFO("lr ", options.lr, ", momentum ", options.momentum, ", weight_decay ", options.weight_decay, ", dampening ",
         options.dampening, ", nesterov ", options.nesterov);
    const std::vector<Shape> shapes = {{7}, {3, 33}, {1}, {2, 3, 5, 5}};
    std::vector<Tensor> cpu, cuda;
    for (const Shape& shape : shapes) {
        Tensor p = randn(shape, gen);
        cpu.push_back(p.clone().requires_grad_());
        cuda.push_back(p.to(kCuda0).requires_grad_());
    }
    // Group "head": the last two parameters at 10x the LR and their own weight decay.
    auto groups = [&](const std::vector<Tensor>& p) {
        return std::vector<ParamGroup>{{"backbone", {p[0], p[1]}, 1.0f, -1.0f}, {"head", {p[2], p[3]}, 10.0f, 0.0f}};
    };
    SGD sgd_cpu(groups(cpu), options), sgd_cuda(groups(cuda), options);

    double M = 1;
    for (int step = 1; step <= 3; ++step) {
        INFO("step ", step);
        float lr = options.lr * float(4 - step) / 3.0f;  // a poly-like decay: the rule must use each step's lr
        sgd_cpu.set_lr(lr);
        sgd_cuda.set_lr(lr);
        for (size_t i = 0; i < cpu.size(); ++i) {
            Tensor g = randn(shapes[i], gen);
            M = std::max(M, 1 + max_abs(g.to_vector()));
            cpu[i].set_grad(g);
            cuda[i].set_grad(g.to(kCuda0));
        }
        sgd_cpu.step();
        sgd_cuda.step();
        for (size_t i = 0; i < cpu.size(); ++i) M = std::max(M, 1 + max_abs(cpu[i].to_vector()));
        NamedTensors state_cpu = sgd_cpu.state(), state_cuda = sgd_cuda.state();
        for (const auto& [name, v] : state_cpu) M = std::max(M, 1 + max_abs(v.to_vector()));
        double tol = 8 * double((1 << step) - 1) * FLT_EPSILON * M;

        for (size_t i = 0; i < cpu.size(); ++i) {
            INFO("parameter ", i);
            CHECK(cuda[i].device() == kCuda0);
            CHECK(difference_above(cuda[i].to_vector(), cpu[i].to_vector(), tol) == "");
        }
        REQUIRE(state_cuda.size() == state_cpu.size());
        for (size_t i = 0; i < state_cpu.size(); ++i) {
            INFO("buffer ", state_cpu[i].first);
            CHECK(state_cuda[i].first == state_cpu[i].first);
            CHECK(state_cuda[i].second.device() == kCuda0);
            CHECK(difference_above(state_cuda[i].second.to_vector(), state_cpu[i].second.to_vector(), tol) == "");
        }
    }
}

}  // namespace

TEST_CASE("cuda sgd_update: SGD steps on the device match the CPU's for every variant of the rule") {
    if (skip_unless_cuda()) return;
    Generator gen(401);
    check_sgd({0.1f, 0.0f, 0.0f, 0.0f, false}, gen);    // plain SGD: no momentum buffer
    check_sgd({0.1f, 0.0f, 1e-2f, 0.0f, false}, gen);   // weight decay only
    check_sgd({0.05f, 0.9f, 1e-4f, 0.0f, false}, gen);  // PSPNet's settings
    check_sgd({0.05f, 0.9f, 1e-2f, 0.3f, false}, gen);  // dampening (not applied on the first step)
    check_sgd({0.05f, 0.9f, 1e-3f, 0.0f, true}, gen);   // nesterov
}
