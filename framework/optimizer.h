// SGD with momentum and weight decay, in PyTorch's formulation, and the poly learning-rate schedule.
//
// For each parameter p with gradient g, one step does (torch.optim.SGD):
//     d = g + weight_decay * p
//     v = d                                  on the first step
//     v = momentum * v + (1 - dampening) * d  afterwards
//     d = d + momentum * v  if nesterov, else  d = v
//     p = p - lr * d
// Caffe puts lr inside the velocity instead (v = momentum * v + lr * g); the two differ when lr changes, which the
// poly schedule does every step (semseg FAQ item 4). We follow PyTorch, as semseg does.
//
// Parameters come in groups, each with its own multiplier of the base LR: PSPNet trains its head at 10x the
// backbone's rate. The update itself is a kernel (sgd_update) so that it runs on the parameters' device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

struct ParamGroup {
    std::string name;
    std::vector<Tensor> params;
    float lr_mult = 1.0f;
    float weight_decay = -1.0f;  // negative: use the optimizer's
};

struct SGDOptions {
    float lr = 0.01f;
    float momentum = 0.9f;
    float weight_decay = 1e-4f;
    float dampening = 0.0f;
    bool nesterov = false;
};

class SGD {
public:
    SGD(std::vector<ParamGroup> groups, SGDOptions options);
    SGD(const std::vector<Tensor>& params, SGDOptions options);

    void step();       // parameters without a gradient are skipped, as in PyTorch
    void zero_grad();  // clears every parameter's .grad
    void set_lr(float lr) { options_.lr = lr; }
    float lr() const { return options_.lr; }
    const SGDOptions& options() const { return options_; }
    const std::vector<ParamGroup>& groups() const { return groups_; }

    // Momentum buffers for checkpoints, named "<group>.<index>.momentum". A parameter that has not been stepped has
    // no buffer yet and is not listed.
    NamedTensors state() const;
    void load_state(const NamedTensors& state);

private:
    std::vector<ParamGroup> groups_;
    SGDOptions options_;
    std::vector<std::vector<Tensor>> momentum_;  // [group][param]; undefined before the first step
};

// lr = base_lr * (1 - iter / max_iter)^power (semseg's poly_learning_rate).
float poly_lr(float base_lr, int64_t iter, int64_t max_iter, float power);

// The update kernel, n elements; `first` is true on a parameter's first step (the buffer is then initialised to d).
using sgd_update_fn = void (*)(float* param, float* momentum_buf, const float* grad, float lr, float momentum,
                               float dampening, float weight_decay, bool nesterov, bool first, int64_t n);
extern KernelTable<sgd_update_fn> sgd_update;

}  // namespace strata
