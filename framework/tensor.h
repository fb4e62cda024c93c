// Tensor: an n-dimensional view of a Storage, plus what autograd needs.
//
//   Tensor ──> TensorImpl { storage, shape, strides, offset, dtype, requires_grad, grad, grad_fn }
//                  │
//                  └──> Storage { bytes on one device }
//
// A Tensor is a cheap handle (a shared_ptr to its TensorImpl): copying a Tensor makes a second handle to the same
// tensor, not a copy of the data. Use clone() for a copy. Several TensorImpls may view one Storage (reshape,
// permute, narrow); strides and offset are counted in elements.
//
// Kernels work on contiguous row-major buffers: an op calls contiguous() on its inputs and then passes raw pointers
// (f32(), i32(), i64()) to its kernel. The view functions below are differentiable (they record themselves in the
// autograd graph); the in-place functions ending in '_' (copy_, fill_, zero_) are not and are meant for
// initialisation, optimizers and loading weights.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "framework/device.h"
#include "framework/dtype.h"
#include "framework/storage.h"

namespace strata {

using Shape = std::vector<int64_t>;

// A (height, width) pair for kernel sizes, strides, paddings and dilations; one number means both.
struct Size2 {
    int64_t h = 0, w = 0;
    Size2() = default;
    Size2(int64_t both) : h(both), w(both) {}
    Size2(int64_t height, int64_t width) : h(height), w(width) {}
    bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
};

std::string shape_str(const Shape& shape);   // "[2, 3, 4]"
int64_t shape_numel(const Shape& shape);     // product of the sizes (1 for a scalar)
Shape contiguous_strides(const Shape& shape); // row-major strides in elements

struct Node;

struct TensorImpl {
    std::shared_ptr<Storage> storage;
    Shape shape;
    Shape strides;
    int64_t offset = 0;  // first element, in elements from storage->data
    DType dtype = DType::F32;

    // autograd
    bool requires_grad = false;         // leaves: set by the user; op outputs: set when recorded in a graph
    std::shared_ptr<TensorImpl> grad;   // accumulated d(loss)/d(this), leaves only
    std::shared_ptr<Node> grad_fn;      // the op that produced this tensor (null for leaves)
};

class Tensor {
public:
    Tensor() = default;
    explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

    bool defined() const { return impl_ != nullptr; }
    TensorImpl* impl() const { return impl_.get(); }
    const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
    bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

    // ---- layout ----
    const Shape& shape() const;
    const Shape& strides() const;
    int64_t offset() const;
    int64_t dim() const;
    int64_t size(int64_t d) const;  // negative d counts from the end
    int64_t numel() const;
    DType dtype() const;
    Device device() const;
    bool is_contiguous() const;
    std::string shape_string() const { return shape_str(shape()); }

    // ---- raw data (the element at offset()); the dtype is checked ----
    float* f32() const;
    int32_t* i32() const;
    int64_t* i64() const;
    void* raw() const;

    // ---- host access (copies from the device when needed) ----
    float item() const;                       // the value of a one-element tensor, as float
    std::vector<float> to_vector() const;     // all elements in row-major order (F32 only)
    std::vector<int64_t> to_vector_i64() const;  // all elements of an I32 or I64 tensor

    // ---- views and copies (recorded by autograd) ----
    Tensor reshape(const Shape& shape) const;           // one size may be -1; copies only if not contiguous
    Tensor permute(const std::vector<int64_t>& dims) const;
    Tensor transpose(int64_t d0, int64_t d1) const;
    Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
    Tensor contiguous() const;  // itself if already contiguous, else a row-major copy
    Tensor clone() const;       // always a new contiguous copy
    Tensor to(Device device) const;
    Tensor detach() const;      // same storage, cut from the graph, requires_grad false

    // ---- in place, not recorded by autograd ----
    void copy_(const Tensor& src);  // same shape and dtype; any devices, any strides
    void fill_(float value);
    void zero_();
    // Makes this tensor use `src`'s storage and layout while keeping its identity (the same TensorImpl, so modules,
    // optimizers and autograd leaves that hold it see the new data). Used by Module::to(device).
    void set_data(const Tensor& src);

    // ---- autograd ----
    bool requires_grad() const;
    Tensor& requires_grad_(bool on = true);  // leaves only
    bool is_leaf() const;
    Tensor grad() const;                     // undefined until a backward reaches this leaf
    void set_grad(const Tensor& g);          // pass an undefined Tensor to clear it
    std::shared_ptr<Node> grad_fn() const;
    // Backpropagates from this tensor. `grad` defaults to 1 for a one-element tensor. The graph's saved tensors
    // are freed as it goes unless retain_graph is true.
    void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

private:
    const TensorImpl& checked() const;
    std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);

// ---- factories ----
class Generator;
Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = kCPU);  // uninitialised
Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = kCPU);
Tensor full(const Shape& shape, float value, DType dtype = DType::F32, Device device = kCPU);
Tensor arange(int64_t n, DType dtype = DType::F32, Device device = kCPU);  // 0, 1, ..., n-1
Tensor zeros_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
// Random tensors from a Generator (the process default one when omitted); see framework/random.h.
Tensor randn(const Shape& shape, Generator& gen, Device device = kCPU);   // normal(0, 1)
Tensor randn(const Shape& shape, Device device = kCPU);
Tensor rand_uniform(const Shape& shape, float low, float high, Generator& gen, Device device = kCPU);
Tensor rand_uniform(const Shape& shape, float low, float high, Device device = kCPU);
// Copies host data into a new tensor; data.size() must equal the shape's element count.
Tensor from_vector(const std::vector<float>& data, const Shape& shape, Device device = kCPU);
Tensor from_vector_i32(const std::vector<int32_t>& data, const Shape& shape, Device device = kCPU);
Tensor from_vector_i64(const std::vector<int64_t>& data, const Shape& shape, Device device = kCPU);

// ---- argument checks shared by ops (each names the op and what it got) ----
void check_dtype(const Tensor& t, DType dtype, const char* op, const char* arg);
void check_dim(const Tensor& t, int64_t dim, const char* op, const char* arg, const char* layout);
void check_same_shape(const Tensor& a, const Tensor& b, const char* op);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace strata
