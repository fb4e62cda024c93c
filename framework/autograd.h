// Reverse-mode automatic differentiation.
//
// As ops run, each one that has an input requiring a gradient records a Node: its name, one Edge per input (where
// that input's gradient must go) and a backward function. The backward function is a lambda written right next
// to the forward code (micrograd, flashlight); it captures the tensors it needs (the "saved tensors") and maps the
// gradient of the op's output to the gradients of its inputs:
//
//     record(y, "relu", {x}, [x](const Tensor& dy, const std::vector<bool>& needs) -> std::vector<Tensor> {
//         return {relu_backward(dy, x)};   // one entry per input; an undefined Tensor means "no gradient"
//     });
//
// Tensor::backward() (run_backward below) sorts the nodes reachable from the loss topologically and walks them
// once, from the loss back to the leaves. Gradients arriving at a node from several consumers (fan-out: a residual
// connection, a tensor used twice) are summed before the node runs; at a leaf they are summed into .grad, across
// backward calls too, until the optimizer clears them. Backward functions return fresh gradients and never add
// into anything themselves: the engine alone accumulates.
//
// After a node has run, its backward function is dropped, which frees its saved tensors. A second backward through
// the same graph is an error unless the first one passed retain_graph = true.
//
// NOTE: a backward lambda must not capture its own output tensor `y` (y -> node -> lambda -> y is a reference
// cycle that leaks the graph when no backward runs). Capture y.detach() instead: same storage, no grad_fn.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace strata {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& dout, const std::vector<bool>& needs_grad)>;

// Where the gradient of one op input goes: into the node that produced it, or into a leaf's .grad.
struct Edge {
    std::shared_ptr<Node> fn;            // producer of the input (non-leaf input)
    std::shared_ptr<TensorImpl> leaf;    // the input itself (leaf that requires grad)
    Shape shape;                         // the input's shape, to check the gradient we are given
    bool needed() const { return fn || leaf; }
};

struct Node {
    std::string name;          // the op, e.g. "conv2d" (shown in errors and by print_graph)
    std::vector<Edge> inputs;  // one per op input, in the op's argument order
    BackwardFn backward;       // null once run (saved tensors freed)
    Shape out_shape;
    uint64_t sequence = 0;     // creation order; later nodes run first among ready ones
};

// Gradient mode. Inside a NoGradGuard scope ops record nothing (evaluation, optimizer updates).
bool grad_enabled();
struct NoGradGuard {
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;
    bool previous;
};

// True if grad mode is on and any defined input requires a gradient: the op should call record().
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `out = name(inputs...)` in the graph (call only when any_requires_grad(inputs)). Marks out as requiring
// grad. needs_grad[i] passed to `backward` tells which inputs want a gradient, so that it can skip the others.
void record(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardFn backward);

// True when t is contiguous and nothing but this one Tensor handle can see its memory (its TensorImpl and its
// storage each have one owner), so that writing over it changes no other tensor. A backward function may then write
// an elementwise result over the gradient it was given (`dout`: the engine hands it over and keeps no other
// handle); ask before making any copy of the handle, which counts as an owner.
bool overwritable(const Tensor& t);

// The engine behind Tensor::backward().
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// The gradient-ready hook, for overlapping work with the rest of a backward (data-parallel training launches each
// bucket's all-reduce from it: framework/data_parallel.h). During a backward on this thread the hook is called once
// per leaf reached by the graph, as soon as the leaf's gradient is final in this backward: after the last node that
// delivers a gradient to it has run, so a leaf used twice is called once, after both contributions are summed into
// .grad. The leaf's .grad may be undefined there (every consumer returned "no gradient"). Leaves the graph does not
// reach are never called. The engine counts the edges into each leaf only while a hook is installed: no cost
// otherwise. A guard installs a hook for its scope and restores the previous one.
using GradReadyHook = std::function<void(const Tensor& leaf)>;
struct GradReadyHookGuard {
    explicit GradReadyHookGuard(GradReadyHook hook);
    ~GradReadyHookGuard();
    GradReadyHookGuard(const GradReadyHookGuard&) = delete;
    GradReadyHookGuard& operator=(const GradReadyHookGuard&) = delete;
    GradReadyHook previous;
};

// A readable listing of the graph behind `t`, one node per line (for debugging and teaching).
std::string print_graph(const Tensor& t);

}  // namespace strata
