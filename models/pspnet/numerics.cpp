// The training state's names and the finiteness check (see numerics.h).
#include "models/pspnet/numerics.h"

#include <map>
#include <optional>

#include "framework/check.h"
#include "framework/finite.h"

namespace strata::pspnet {

NamedTensors training_state(const Module& model, const SGD& optimizer) {
    NamedTensors out = model.state_dict();
    // SGD names its buffers "<group>.<index>.momentum"; the group's tensors are the model's, so name them after
    // the parameter they belong to.
    std::map<std::string, std::string> param_name;
    std::map<const TensorImpl*, std::string> by_tensor;
    for (auto& [name, p] : model.named_parameters()) by_tensor[p.impl()] = name;
    for (const ParamGroup& group : optimizer.groups())
        for (size_t i = 0; i < group.params.size(); ++i) {
            auto it = by_tensor.find(group.params[i].impl());
            if (it != by_tensor.end()) param_name[str(group.name, ".", i, ".momentum")] = it->second;
        }
    for (auto& [name, v] : optimizer.state()) {
        auto it = param_name.find(name);
        out.emplace_back("momentum of " + (it != param_name.end() ? it->second : name), v);
    }
    return out;
}

NamedTensors named_gradients(const Module& model) {
    NamedTensors out;
    for (auto& [name, p] : model.named_parameters())
        if (p.grad().defined()) out.emplace_back("gradient of " + name, p.grad());
    return out;
}

void require_finite(const NamedTensors& tensors, const std::string& context, const std::string& advice) {
    std::optional<NonFiniteTensor> bad = find_nonfinite(tensors);
    if (!bad) return;
    STRATA_FAIL(context, ": ", bad->description,
                bad->tensors_with_nonfinite > 1 ? str(" (", bad->tensors_with_nonfinite, " tensors hold NaN or Inf)")
                                                : std::string(),
                ". ", advice);
}

}  // namespace strata::pspnet
