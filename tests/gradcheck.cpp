// The gradient checker (see gradcheck.h).
#include "tests/gradcheck.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/random.h"

namespace strata::testing {

namespace {

double weighted_sum(const Tensor& y, const std::vector<float>& w) {
    std::vector<float> v = y.to_vector();
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += double(w[i]) * double(v[i]);
    return s;
}

}  // namespace

int64_t gradcheck(const std::string& what, const GradFn& f, const std::vector<Tensor>& inputs,
                  const GradcheckOptions& opt) {
    // Leaves we own, so that the caller's tensors are untouched.
    std::vector<Tensor> leaves;
    for (const Tensor& t : inputs) {
        if (!t.defined()) {
            leaves.push_back(t);
            continue;
        }
        Tensor c = t.detach().clone();
        if (t.requires_grad()) c.requires_grad_(true);
        leaves.push_back(c);
    }

    Tensor y = f(leaves);
    Generator gen(opt.seed);
    std::vector<float> w(size_t(y.numel()));
    for (float& v : w) v = gen.normal();
    Tensor wt = from_vector(w, y.shape(), y.device());
    // dL/dy = w
    y.backward(wt);

    int64_t compared = 0;
    int failures = 0;
    for (size_t k = 0; k < leaves.size(); ++k) {
        Tensor x = leaves[k];
        if (!x.defined() || !x.requires_grad()) continue;
        Tensor grad = x.grad();
        CHECK_MESSAGE(grad.defined(), what, ": input ", k, " requires grad but received none");
        if (!grad.defined()) continue;
        std::vector<float> analytic = grad.to_vector();

        std::vector<int64_t> points(size_t(x.numel()));
        for (size_t i = 0; i < points.size(); ++i) points[i] = int64_t(i);
        if (int64_t(points.size()) > opt.max_points) {
            for (size_t i = points.size() - 1; i > 0; --i) std::swap(points[i], points[size_t(gen.randint(int64_t(i) + 1))]);
            points.resize(size_t(opt.max_points));
            std::sort(points.begin(), points.end());
        }

        NoGradGuard no_grad;
        float* data = x.f32();  // leaves are contiguous CPU clones
        int64_t skipped = 0;
        auto eval = [&]() { return weighted_sum(f(leaves), w); };
        double base = eval();
        for (int64_t i : points) {
            float saved = data[i];
            data[i] = float(saved + opt.eps);
            double plus = eval();
            data[i] = float(saved - opt.eps);
            double minus = eval();
            data[i] = saved;
            double numeric = (plus - minus) / (2 * opt.eps);
            double forward = (plus - base) / opt.eps, backward = (base - minus) / opt.eps;
            if (std::abs(forward - backward) > opt.kink_tol * std::max({std::abs(forward), std::abs(backward), 1.0})) {
                ++skipped;
                continue;
            }
            double a = analytic[size_t(i)];
            double scale = std::max({std::abs(a), std::abs(numeric), 1.0});
            ++compared;
            if (std::abs(a - numeric) > opt.tol * scale && failures < 8) {
                ++failures;
                FAIL_CHECK(what, ": gradient of input ", k, " at flat index ", i, ": analytic ", a,
                           " vs numeric ", numeric);
            }
        }
        CHECK_MESSAGE(double(skipped) <= opt.max_skipped_fraction * double(points.size()), what, ": input ", k, ": ",
                      skipped, " of ", points.size(), " points skipped as kinks; choose inputs away from kinks");
    }
    CHECK_MESSAGE(compared > 0, what, ": no gradient was checked");
    return compared;
}

}  // namespace strata::testing
