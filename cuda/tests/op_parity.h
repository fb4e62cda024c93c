// Helpers for the parity tests of the ops' CUDA twins (cuda/tests/test_<op>.cpp): run an op forward and backward
// on a device from CPU data, and compare two results bitwise or within a tolerance, saying where they differ.
// Plain C++ against the Strata API, like the tests that include it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "framework/check.h"
#include "framework/tensor.h"

namespace strata {

// The output and the input gradient of one run, copied to the host.
struct ForwardBackward {
    std::vector<float> y, dx;
};

// Runs y = op(x on `device`) and y.backward(dy on `device`). x is a CPU leaf that requires grad, so its gradient
// comes back to the CPU through to(); running with kCPU gives the reference.
inline ForwardBackward run_forward_backward(const std::function<Tensor(const Tensor&)>& op, const Tensor& x,
                                            const Tensor& dy, Device device) {
    Tensor x_leaf = x.clone().requires_grad_();
    Tensor y = op(x_leaf.to(device));
    STRATA_CHECK(y.device() == device, "run_forward_backward: the op's output is on ", device_name(y.device()));
    y.backward(dy.to(device));
    STRATA_CHECK(x_leaf.grad().defined(), "run_forward_backward: no gradient reached x");
    return {y.to_vector(), x_leaf.grad().to_vector()};
}

// "" when a and b hold the same floats bit for bit (so NaNs must agree too, and -0 differs from +0), else where
// they first differ.
inline std::string bitwise_difference(const std::vector<float>& got, const std::vector<float>& want) {
    if (got.size() != want.size()) return str("sizes differ: ", got.size(), " vs ", want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        uint32_t a, b;
        std::memcpy(&a, &got[i], 4);
        std::memcpy(&b, &want[i], 4);
        if (a != b) return str("element ", i, " of ", got.size(), ": got ", got[i], ", want ", want[i]);
    }
    return "";
}

// "" when |got - want| <= tol everywhere (no NaNs allowed), else the worst element.
inline std::string difference_above(const std::vector<float>& got, const std::vector<float>& want, double tol) {
    if (got.size() != want.size()) return str("sizes differ: ", got.size(), " vs ", want.size());
    size_t worst = 0;
    double worst_error = -1;
    for (size_t i = 0; i < got.size(); ++i) {
        double error = std::fabs(double(got[i]) - double(want[i]));
        if (std::isnan(error)) return str("element ", i, ": got ", got[i], ", want ", want[i]);
        if (error > worst_error) worst = i, worst_error = error;
    }
    if (worst_error <= tol) return "";
    return str("element ", worst, " of ", got.size(), ": got ", got[worst], ", want ", want[worst], ", error ",
               worst_error, " > tolerance ", tol);
}

}  // namespace strata
