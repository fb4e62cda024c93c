// The autograd engine (see autograd.h for the model).
#include "framework/autograd.h"

#include <algorithm>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "framework/check.h"
#include "framework/tensor_kernels.h"

namespace strata {

namespace {
thread_local bool g_grad_enabled = true;
thread_local GradReadyHook g_grad_ready_hook;
uint64_t g_next_sequence = 0;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous; }

GradReadyHookGuard::GradReadyHookGuard(GradReadyHook hook) : previous(std::move(g_grad_ready_hook)) {
    g_grad_ready_hook = std::move(hook);
}
GradReadyHookGuard::~GradReadyHookGuard() { g_grad_ready_hook = std::move(previous); }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
    if (!g_grad_enabled) return false;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}

void record(Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardFn backward) {
    auto node = std::make_shared<Node>();
    node->name = name;
    node->backward = std::move(backward);
    node->out_shape = out.shape();
    node->sequence = g_next_sequence++;
    for (const Tensor& t : inputs) {
        Edge e;
        if (t.defined()) {
            e.shape = t.shape();
            if (t.requires_grad()) {
                if (t.grad_fn()) e.fn = t.grad_fn();
                else e.leaf = t.impl_ptr();
            }
        }
        node->inputs.push_back(std::move(e));
    }
    out.impl()->requires_grad = true;
    out.impl()->grad_fn = std::move(node);
}

bool overwritable(const Tensor& t) {
    return t.defined() && t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1 && t.is_contiguous();
}

namespace {

// a + b: into a's memory when no one else can see it (the engine's pending gradient is its only owner), else as a
// new tensor (a gradient may be shared by several consumers, e.g. add's backward hands the same dout to both
// inputs).
Tensor sum_of(Tensor a, const Tensor& b) {
    Tensor s = overwritable(a) ? std::move(a) : a.contiguous().clone();
    Tensor bc = b.contiguous();
    accumulate[s.device()](s.f32(), bc.f32(), s.numel());
    return s;
}

void accumulate_into_leaf(TensorImpl* leaf, const Tensor& g) {
    if (!leaf->grad) {
        // The leaf keeps g itself when nothing else can see g's memory (the usual case: a fresh gradient from a
        // backward kernel); otherwise an own copy, because g may alias another gradient (add hands the same dout
        // to both inputs) that a later accumulation would change.
        leaf->grad = overwritable(g) ? g.impl_ptr() : g.contiguous().clone().impl_ptr();
        return;
    }
    Tensor acc(leaf->grad);
    Tensor gc = g.contiguous();
    accumulate[acc.device()](acc.f32(), gc.f32(), acc.numel());
}

void check_gradient(const Node& node, size_t i, const Tensor& g) {
    const Edge& e = node.inputs[i];
    STRATA_CHECK(g.dtype() == DType::F32, "autograd: backward of '", node.name, "' returned a ", dtype_name(g.dtype()),
                 " gradient for input ", i, "; gradients are F32");
    STRATA_CHECK(g.shape() == e.shape, "autograd: backward of '", node.name, "' returned a gradient of shape ",
                 shape_str(g.shape()), " for input ", i, " of shape ", shape_str(e.shape));
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
    STRATA_CHECK(root.defined(), "backward() on an undefined tensor");
    STRATA_CHECK(root.requires_grad(),
                 "backward(): the tensor does not require grad; no input of the computation that produced it had "
                 "requires_grad set (or it ran under NoGradGuard)");
    Tensor grad = grad_in;
    if (!grad.defined()) {
        STRATA_CHECK(root.numel() == 1, "backward(): the tensor has shape ", root.shape_string(),
                     "; pass a gradient of that shape, or reduce it to one element first (e.g. with mean)");
        grad = ones(root.shape(), DType::F32, root.device());
    }
    STRATA_CHECK(grad.shape() == root.shape(), "backward(): gradient shape ", grad.shape_string(),
                 " does not match tensor shape ", root.shape_string());
    NoGradGuard no_grad;  // backward functions run ops; they must not record a graph of their own

    if (!root.grad_fn()) {  // backward on a leaf: its gradient is the seed
        accumulate_into_leaf(root.impl(), grad);
        if (g_grad_ready_hook) g_grad_ready_hook(root);
        return;
    }

    // 1. Find every node reachable from the root and count, for each, how many edges point at it; with a
    //    gradient-ready hook, also how many edges point at each leaf.
    const GradReadyHook& hook = g_grad_ready_hook;
    std::unordered_map<TensorImpl*, int> leaf_edges;
    std::unordered_map<Node*, int> dependencies;
    std::vector<Node*> stack = {root.grad_fn().get()};
    dependencies[root.grad_fn().get()] = 0;
    while (!stack.empty()) {
        Node* n = stack.back();
        stack.pop_back();
        for (const Edge& e : n->inputs) {
            if (hook && e.leaf) ++leaf_edges[e.leaf.get()];
            if (!e.fn) continue;
            auto it = dependencies.find(e.fn.get());
            if (it == dependencies.end()) {
                dependencies[e.fn.get()] = 1;
                stack.push_back(e.fn.get());
            } else {
                it->second++;
            }
        }
    }

    // 2. Run nodes whose consumers have all delivered their gradients. Among ready nodes the most recently created
    //    runs first, which follows the forward order backwards and frees activations early.
    auto later_first = [](const Node* a, const Node* b) { return a->sequence < b->sequence; };
    std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
    std::unordered_map<Node*, Tensor> pending;
    pending[root.grad_fn().get()] = grad;
    ready.push(root.grad_fn().get());
    std::shared_ptr<Node> keep_root = root.grad_fn();

    while (!ready.empty()) {
        Node* node = ready.top();
        ready.pop();
        Tensor dout = std::move(pending[node]);
        pending.erase(node);
        STRATA_CHECK(node->backward != nullptr, "backward through the graph a second time: the saved tensors of '",
                     node->name, "' were freed by the first backward. Pass retain_graph = true to the first "
                     "backward() if you need to run it twice");

        std::vector<bool> needs(node->inputs.size());
        for (size_t i = 0; i < needs.size(); ++i) needs[i] = node->inputs[i].needed();
        std::vector<Tensor> grads = node->backward(dout, needs);
        dout = Tensor();
        if (!retain_graph) node->backward = nullptr;  // frees the saved tensors
        STRATA_CHECK(grads.size() == node->inputs.size(), "autograd: backward of '", node->name, "' returned ",
                     grads.size(), " gradients for ", node->inputs.size(), " inputs");

        for (size_t i = 0; i < grads.size(); ++i) {
            const Edge& e = node->inputs[i];
            if (!e.needed()) continue;
            if (e.fn) {
                Node* next = e.fn.get();
                if (grads[i].defined()) {
                    check_gradient(*node, i, grads[i]);
                    auto it = pending.find(next);
                    if (it == pending.end() || !it->second.defined()) pending[next] = grads[i];
                    else it->second = sum_of(std::move(it->second), grads[i]);
                }
                if (--dependencies[next] == 0) {
                    // A node none of whose consumers produced a gradient gets zeros, so its own inputs are still
                    // reached consistently.
                    if (!pending[next].defined()) pending[next] = zeros(next->out_shape, DType::F32, grad.device());
                    ready.push(next);
                }
            } else {
                if (grads[i].defined()) {
                    check_gradient(*node, i, grads[i]);
                    accumulate_into_leaf(e.leaf.get(), grads[i]);
                }
                if (hook && --leaf_edges[e.leaf.get()] == 0) hook(Tensor(e.leaf));
            }
        }
    }
}

std::string print_graph(const Tensor& t) {
    std::ostringstream out;
    if (!t.grad_fn()) {
        out << (t.requires_grad() ? "leaf " : "constant ") << t.shape_string() << "\n";
        return out.str();
    }
    std::vector<std::pair<Node*, int>> stack = {{t.grad_fn().get(), 0}};
    std::unordered_map<Node*, bool> seen;
    while (!stack.empty()) {
        auto [n, depth] = stack.back();
        stack.pop_back();
        out << std::string(2 * depth, ' ') << n->name << " -> " << shape_str(n->out_shape);
        if (seen[n]) {
            out << " (shown above)\n";
            continue;
        }
        seen[n] = true;
        out << (n->backward ? "" : " (freed)") << "\n";
        for (auto it = n->inputs.rbegin(); it != n->inputs.rend(); ++it) {
            if (it->fn) stack.push_back({it->fn.get(), depth + 1});
            else if (it->leaf)
                out << std::string(2 * depth + 2, ' ') << "leaf " << shape_str(it->shape) << "\n";
        }
    }
    return out.str();
}

}  // namespace strata
