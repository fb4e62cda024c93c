// The finite-difference gradient checker every op's test uses.
//
// For an op f and its inputs, it compares the gradient autograd computes with central differences of the scalar
//     L(inputs) = sum_i w_i * f(inputs)_i
// where w is a fixed random weighting (not all ones), so that a gradient that is transposed, shifted or summed
// over the wrong axis cannot cancel out the way it can under a plain sum (Caffe, ggml).
//
//  - Every F32 input that requires grad is checked: data inputs and parameters alike (pass weights as inputs).
//  - Central differences: n = (L(x + eps) - L(x - eps)) / 2 eps, evaluated in double from float32 outputs.
//  - Pass test: |a - n| <= tol * max(|a|, |n|, 1), the relative error floored at 1 (Caffe).
//  - Kinks (ReLU at 0, max-pool ties, the edge of a bin) are found without knowing the op: where the one-sided
//    differences (L(x+eps) - L(x)) / eps and (L(x) - L(x-eps)) / eps disagree by more than kink_tol, the point is
//    next to a kink and skipped. Too many skipped points fails the check (the test inputs are then badly chosen).
//  - Inputs larger than max_points are sampled at deterministic random positions.
// Failures are reported through doctest with the op, the input, the index and both values.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace strata::testing {

struct GradcheckOptions {
    double eps = 1e-2;
    double tol = 1e-2;
    // Next to a kink the central difference is off by half the gap between the one-sided differences, so a gap
    // above 2 * tol is exactly what could fail the test for a reason other than a wrong gradient: skip those.
    double kink_tol = 2e-2;
    int64_t max_points = 300;              // per input
    double max_skipped_fraction = 0.25;
    uint64_t seed = 7;
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Returns the number of points compared (so a test can assert that something was checked).
int64_t gradcheck(const std::string& what, const GradFn& f, const std::vector<Tensor>& inputs,
                  const GradcheckOptions& options = {});

}  // namespace strata::testing
