// Tolerances for comparing the results of GEMM-based ops (linear, conv2d) between the CPU and the GPU.
//
// Each result element is a sum of T products (plus a bias), which the CPU (OpenBLAS) and cuBLAS add in different
// orders, with or without fused multiply-adds. The classical bound for a float sum of T terms in any order is
// |computed - exact| <= gamma_T * sum |terms|, gamma_T ~ T * 2^-24; both sides are within it, so they differ by at
// most T * FLT_EPSILON * sum |terms|. The sum of the absolute terms is the same op run on the absolute values of its
// inputs (|x| and |w| give sum |x w|), on the CPU: that gives a per-element tolerance that is rigorous and still
// small (a wrong tap, image or channel changes an element by a whole term, typically ~1/T of that sum, which is
// hundreds of times the tolerance for the sizes tested).
#pragma once

#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "framework/check.h"
#include "framework/tensor.h"

namespace strata {

// |t| elementwise, as a new CPU tensor.
inline Tensor abs_of(const Tensor& t) {
    std::vector<float> v = t.to_vector();
    for (float& e : v) e = std::fabs(e);
    return from_vector(v, t.shape());
}

// The tolerance of each element of a sum of `terms` terms whose absolute values add up to sum_abs[i] (see above).
inline std::vector<double> sum_tolerance(const Tensor& sum_abs, int64_t terms) {
    std::vector<float> s = sum_abs.to_vector();
    std::vector<double> tol(s.size());
    for (size_t i = 0; i < s.size(); ++i) tol[i] = double(terms) * FLT_EPSILON * double(s[i]);
    return tol;
}

// "" when |got[i] - want[i]| <= tol[i] for every i (no NaNs allowed), else the first element beyond its tolerance.
inline std::string difference_beyond(const std::vector<float>& got, const std::vector<float>& want,
                                     const std::vector<double>& tol) {
    if (got.size() != want.size() || got.size() != tol.size())
        return str("sizes differ: got ", got.size(), ", want ", want.size(), ", tolerances ", tol.size());
    for (size_t i = 0; i < got.size(); ++i) {
        double error = std::fabs(double(got[i]) - double(want[i]));
        if (!(error <= tol[i]))
            return str("element ", i, " of ", got.size(), ": got ", got[i], ", want ", want[i], ", error ", error,
                       " > tolerance ", tol[i]);
    }
    return "";
}

}  // namespace strata
