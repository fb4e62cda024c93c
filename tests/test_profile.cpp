// The per-kernel profile (framework/profile.h): kernel calls and GEMM FLOPs land on the right lines.
#include <doctest/doctest.h>

#include "framework/autograd.h"
#include "framework/profile.h"
#include "framework/random.h"
#include "layers/conv2d.h"
#include "layers/relu.h"
#include "layers/sum.h"

using namespace strata;

namespace {

// The line of `kernel` in the report ("" when absent).
std::string line_of(const std::string& report, const std::string& kernel) {
    size_t at = report.find("\n" + kernel + " ");
    if (at == std::string::npos) return "";
    return report.substr(at + 1, report.find('\n', at + 1) - at - 1);
}

}  // namespace

TEST_CASE("profile: forward and backward kernels get their own lines, with the GEMM FLOPs they issued") {
    manual_seed(3);
    Tensor x = randn({2, 3, 9, 9}).requires_grad_(true);
    Tensor w = randn({4, 3, 3, 3}).requires_grad_(true);
    set_profiling(true);
    Tensor loss = sum(relu(conv2d(x, w)));
    loss.backward();
    std::string report = profile_report();
    set_profiling(false);
    CAPTURE(report);
    std::string fwd = line_of(report, "conv2d_forward"), bwd = line_of(report, "conv2d_backward");
    REQUIRE(!fwd.empty());
    REQUIRE(!bwd.empty());
    CHECK(!line_of(report, "relu_forward").empty());
    CHECK(!line_of(report, "relu_backward").empty());
    // forward: one GEMM of 2*K*CRS*N*P*Q FLOPs = 2*4*27*2*49; backward: dW and dX, twice that
    double fwd_gflop = std::stod(fwd.substr(fwd.find('%') + 1));
    double bwd_gflop = std::stod(bwd.substr(bwd.find('%') + 1));
    CHECK(fwd_gflop == doctest::Approx(2.0 * 4 * 27 * 2 * 49 * 1e-9).epsilon(0.01));
    CHECK(bwd_gflop == doctest::Approx(2 * 2.0 * 4 * 27 * 2 * 49 * 1e-9).epsilon(0.01));
    CHECK(report.find("outside GEMM") != std::string::npos);
}

TEST_CASE("profile: off by default and when switched off, nothing is counted") {
    set_profiling(true);
    set_profiling(false);
    CHECK_FALSE(profiling());
    Tensor y = relu(randn({8}));
    CHECK(line_of(profile_report(), "relu_forward").empty());
}
