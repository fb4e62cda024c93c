// Modules: the building blocks of models.
//
// A Module owns named parameters (tensors the optimizer trains), named buffers (state that is saved but not
// trained, e.g. BatchNorm's running statistics) and named child modules. Names compose with dots, exactly as in
// PyTorch, so that `layer1.0.conv1.weight` in a Strata checkpoint is the same tensor as in a semseg/PyTorch one.
//
//     struct Block : Module {
//         std::shared_ptr<Conv2d> conv;
//         Block() { conv = register_module("conv", std::make_shared<Conv2d>(16, 16, 3, 1, 1)); }
//         Tensor forward(const Tensor& x) override { return relu(conv->forward(x)); }
//     };
//
// train()/eval() switch the mode that BatchNorm and Dropout read; to(device) moves every parameter and buffer in
// place (the tensors keep their identity, so an optimizer built before the move still holds them).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/tensor.h"

namespace strata {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found (in non-strict mode it reports instead of failing).
struct LoadReport {
    std::vector<std::string> missing;     // in the module, not in the state
    std::vector<std::string> unexpected;  // in the state, not in the module
};

class Module {
public:
    virtual ~Module() = default;

    // The single-input forward used by Sequential and the layer registry. Modules with other signatures (PSPNet
    // returns two outputs) define their own methods and leave this one failing.
    virtual Tensor forward(const Tensor& x);
    Tensor operator()(const Tensor& x) { return forward(x); }
    virtual std::string type_name() const { return "Module"; }

    NamedTensors named_parameters() const;   // recursive, registration order, dotted names
    std::vector<Tensor> parameters() const;
    NamedTensors named_buffers() const;
    NamedTensors state_dict() const;         // parameters and buffers
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
    int64_t num_parameters() const;          // total element count of all parameters

    // Copies values by name. Shapes must match exactly (the error names the tensor and both shapes). strict: every
    // module tensor must be present and every state entry used; otherwise missing/unexpected names are reported.
    LoadReport load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

    void train(bool on = true);
    void eval() { train(false); }
    bool is_training() const { return training_; }
    void to(Device device);
    void zero_grad();  // clears .grad of every parameter

protected:
    Tensor register_parameter(const std::string& name, Tensor value);  // marks it requires_grad
    Tensor register_buffer(const std::string& name, Tensor value);
    template <typename M>
    std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
        add_child(name, module);
        return module;
    }

private:
    void add_child(const std::string& name, std::shared_ptr<Module> module);
    void check_new_name(const std::string& name) const;
    void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const;

    NamedTensors parameters_;
    NamedTensors buffers_;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
    bool training_ = true;
};

// Runs its children in order; children are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
public:
    Sequential() = default;
    explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules);
    void append(std::shared_ptr<Module> module);
    size_t size() const { return named_children().size(); }
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Sequential"; }
};

}  // namespace strata
