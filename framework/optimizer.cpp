// SGD and poly LR (see optimizer.h for the update rule).
#include "framework/optimizer.h"

#include <cmath>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<sgd_update_fn> sgd_update{"sgd_update"};

namespace {

void sgd_update_cpu(float* p, float* v, const float* g, float lr, float momentum, float dampening, float wd,
                    bool nesterov, bool first, int64_t n) {
    parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
#pragma omp simd  // vectorized: p, v and g are distinct tensors (the compiler cannot tell on its own)
        for (int64_t i = lo; i < hi; ++i) {
            float d = g[i] + wd * p[i];
            if (momentum != 0.0f) {
                v[i] = first ? d : momentum * v[i] + (1.0f - dampening) * d;
                d = nesterov ? d + momentum * v[i] : v[i];
            }
            p[i] -= lr * d;
        }
    });
}

}  // namespace

REGISTER_KERNEL(sgd_update, DeviceType::CPU, sgd_update_cpu);

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : groups_(std::move(groups)), options_(options) {
    STRATA_CHECK(options_.lr >= 0, "SGD: lr must be >= 0, got ", options_.lr);
    STRATA_CHECK(options_.momentum >= 0, "SGD: momentum must be >= 0, got ", options_.momentum);
    STRATA_CHECK(options_.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", options_.weight_decay);
    STRATA_CHECK(!options_.nesterov || (options_.momentum > 0 && options_.dampening == 0),
                 "SGD: nesterov needs momentum > 0 and dampening 0");
    for (const ParamGroup& g : groups_) {
        for (const Tensor& p : g.params) {
            STRATA_CHECK(p.defined() && p.dtype() == DType::F32 && p.is_leaf(), "SGD: group '", g.name,
                         "' holds a tensor that is not an F32 leaf; pass module parameters");
            STRATA_CHECK(p.is_contiguous(), "SGD: parameters must be contiguous");
        }
        momentum_.emplace_back(g.params.size());
    }
}

SGD::SGD(const std::vector<Tensor>& params, SGDOptions options) : SGD({ParamGroup{"params", params}}, options) {}

void SGD::step() {
    NoGradGuard no_grad;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
        const ParamGroup& group = groups_[gi];
        float lr = options_.lr * group.lr_mult;
        float wd = group.weight_decay >= 0 ? group.weight_decay : options_.weight_decay;
        for (size_t pi = 0; pi < group.params.size(); ++pi) {
            const Tensor& p = group.params[pi];
            Tensor g = p.grad();
            if (!g.defined()) continue;
            STRATA_CHECK(g.device() == p.device() && g.shape() == p.shape(), "SGD: group '", group.name, "' parameter ",
                         pi, " is ", p.shape_string(), " on ", device_name(p.device()), " but its gradient is ",
                         g.shape_string(), " on ", device_name(g.device()));
            Tensor gc = g.contiguous();
            Tensor& v = momentum_[gi][pi];
            bool first = !v.defined();
            if (first && options_.momentum != 0.0f) v = empty_like(p);
            sgd_update[p.device()](p.f32(), v.defined() ? v.f32() : nullptr, gc.f32(), lr, options_.momentum,
                                   options_.dampening, wd, options_.nesterov, first, p.numel());
        }
    }
}

void SGD::zero_grad() {
    for (ParamGroup& g : groups_)
        for (Tensor& p : g.params) p.set_grad(Tensor());
}

NamedTensors SGD::state() const {
    NamedTensors out;
    for (size_t gi = 0; gi < groups_.size(); ++gi)
        for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi)
            if (momentum_[gi][pi].defined())
                out.emplace_back(str(groups_[gi].name, ".", pi, ".momentum"), momentum_[gi][pi]);
    return out;
}

void SGD::load_state(const NamedTensors& state) {
    for (auto& group_buffers : momentum_)
        for (Tensor& v : group_buffers) v = Tensor();
    for (const auto& [name, t] : state) {
        bool placed = false;
        for (size_t gi = 0; gi < groups_.size() && !placed; ++gi) {
            const std::string prefix = groups_[gi].name + ".";
            if (name.rfind(prefix, 0) != 0) continue;
            std::string rest = name.substr(prefix.size());
            size_t dot = rest.find('.');
            if (dot == std::string::npos || rest.substr(dot) != ".momentum") continue;
            size_t pi = std::stoul(rest.substr(0, dot));
            STRATA_CHECK(pi < groups_[gi].params.size(), "SGD state: '", name, "' names parameter ", pi,
                         " but group '", groups_[gi].name, "' has ", groups_[gi].params.size());
            const Tensor& p = groups_[gi].params[pi];
            STRATA_CHECK(t.shape() == p.shape(), "SGD state: '", name, "' has shape ", t.shape_string(),
                         " but the parameter has ", p.shape_string());
            momentum_[gi][pi] = t.to(p.device()).clone();
            placed = true;
        }
        STRATA_CHECK(placed, "SGD state: '", name, "' matches no parameter group of this optimizer");
    }
}

float poly_lr(float base_lr, int64_t iter, int64_t max_iter, float power) {
    STRATA_CHECK(max_iter > 0, "poly_lr: max_iter must be > 0, got ", max_iter);
    double frac = 1.0 - double(iter) / double(max_iter);
    if (frac < 0) frac = 0;
    return float(base_lr * std::pow(frac, double(power)));
}

}  // namespace strata
