// Module bookkeeping: registration, recursive naming, state loading, modes and devices.
#include "framework/module.h"

#include <algorithm>

#include "framework/check.h"

namespace strata {

Tensor Module::forward(const Tensor&) {
    STRATA_FAIL(type_name(), " has no single-input forward(); call its own methods instead");
}

void Module::check_new_name(const std::string& name) const {
    STRATA_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name(), ": bad member name '", name,
                 "' (names must be non-empty and contain no '.')");
    auto taken = [&](const auto& list) {
        return std::any_of(list.begin(), list.end(), [&](const auto& p) { return p.first == name; });
    };
    STRATA_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name(), ": the name '", name,
                 "' is registered twice");
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
    check_new_name(name);
    value.requires_grad_(true);
    parameters_.emplace_back(name, value);
    return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
    check_new_name(name);
    buffers_.emplace_back(name, value);
    return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
    check_new_name(name);
    STRATA_CHECK(module != nullptr, type_name(), ": child '", name, "' is null");
    module->train(training_);
    children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const {
    if (params)
        for (const auto& [name, t] : parameters_) out.emplace_back(prefix + name, t);
    if (buffers)
        for (const auto& [name, t] : buffers_) out.emplace_back(prefix + name, t);
    for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers, out);
}

NamedTensors Module::named_parameters() const {
    NamedTensors out;
    collect("", true, false, out);
    return out;
}

std::vector<Tensor> Module::parameters() const {
    std::vector<Tensor> out;
    for (auto& [name, t] : named_parameters()) out.push_back(t);
    return out;
}

NamedTensors Module::named_buffers() const {
    NamedTensors out;
    collect("", false, true, out);
    return out;
}

NamedTensors Module::state_dict() const {
    // Per module: its parameters, then its buffers, then its children (PyTorch's order).
    NamedTensors out;
    collect("", true, true, out);
    return out;
}

int64_t Module::num_parameters() const {
    int64_t n = 0;
    for (auto& [name, t] : named_parameters()) n += t.numel();
    return n;
}

LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
    LoadReport report;
    NamedTensors own = state_dict();
    std::map<std::string, bool> used;
    for (auto& [name, t] : own) {
        auto it = state.find(name);
        if (it == state.end()) {
            report.missing.push_back(name);
            continue;
        }
        used[name] = true;
        const Tensor& src = it->second;
        STRATA_CHECK(src.shape() == t.shape(), "load_state_dict: '", name, "' has shape ", src.shape_string(),
                     " in the checkpoint but ", t.shape_string(), " in the model");
        STRATA_CHECK(src.dtype() == t.dtype(), "load_state_dict: '", name, "' is ", dtype_name(src.dtype()),
                     " in the checkpoint but ", dtype_name(t.dtype()), " in the model");
        t.copy_(src);
    }
    for (auto& [name, t] : state)
        if (!used.count(name)) report.unexpected.push_back(name);
    if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
        auto join = [](const std::vector<std::string>& v) {
            std::string s;
            for (size_t i = 0; i < v.size() && i < 10; ++i) s += (i ? ", " : "") + v[i];
            if (v.size() > 10) s += str(", ... (", v.size(), " in all)");
            return s.empty() ? std::string("none") : s;
        };
        STRATA_FAIL("load_state_dict: the checkpoint does not match the model. Missing from the checkpoint: ",
                    join(report.missing), ". Not in the model: ", join(report.unexpected),
                    ". Load with strict = false to take only the matching tensors");
    }
    return report;
}

void Module::train(bool on) {
    training_ = on;
    for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
    for (auto& [name, t] : parameters_) {
        if (t.device() == device) continue;
        t.set_data(t.detach().to(device));
        t.set_grad(Tensor());
    }
    for (auto& [name, t] : buffers_)
        if (t.device() != device) t.set_data(t.to(device));
    for (auto& [name, child] : children_) child->to(device);
}

void Module::zero_grad() {
    for (Tensor& t : parameters()) t.set_grad(Tensor());
}

// ---- Sequential ----

Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) {
    for (const auto& m : modules) append(m);
}

void Sequential::append(std::shared_ptr<Module> module) {
    register_module(std::to_string(size()), std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
    Tensor y = x;
    for (auto& [name, child] : named_children()) y = child->forward(y);
    return y;
}

}  // namespace strata
