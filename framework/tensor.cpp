// Tensor: layout, views, copies, factories (see tensor.h).
#include "framework/tensor.h"

#include <cstring>
#include <ostream>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor_kernels.h"

namespace strata {

std::string shape_str(const Shape& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

int64_t shape_numel(const Shape& shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
}

Shape contiguous_strides(const Shape& shape) {
    Shape strides(shape.size());
    int64_t s = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = s;
        s *= shape[i];
    }
    return strides;
}

namespace {

StridedLayout layout_of(const Tensor& t) {
    STRATA_CHECK(t.dim() <= kMaxDims, "tensors have at most ", kMaxDims, " dimensions, got ", t.dim());
    StridedLayout l;
    l.ndim = int(t.dim());
    for (int i = 0; i < l.ndim; ++i) {
        l.shape[i] = t.shape()[i];
        l.strides[i] = t.strides()[i];
    }
    return l;
}

// A new tensor over `base`'s storage with another layout (no data is copied).
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = base.impl()->storage;
    impl->shape = std::move(shape);
    impl->strides = std::move(strides);
    impl->offset = offset;
    impl->dtype = base.dtype();
    return Tensor(impl);
}

// Copies a contiguous tensor to another device as a new contiguous tensor.
Tensor transfer(const Tensor& src, Device dst) {
    Tensor out = empty(src.shape(), src.dtype(), dst);
    size_t nbytes = size_t(src.numel()) * dtype_size(src.dtype());
    if (nbytes == 0) return out;
    Device from = src.device();
    if (from.is_cpu() && dst.is_cpu()) std::memcpy(out.raw(), src.raw(), nbytes);
    else if (from.is_cpu()) backend(dst.type).copy_from_host(out.raw(), src.raw(), nbytes, dst.index);
    else if (dst.is_cpu()) backend(from.type).copy_to_host(out.raw(), src.raw(), nbytes, from.index);
    else if (from.type == dst.type && from.index == dst.index)
        backend(dst.type).copy_on_device(out.raw(), src.raw(), nbytes, dst.index);
    else return transfer(transfer(src, kCPU), dst);  // between two accelerators: through the host
    return out;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
    int64_t w = d < 0 ? d + ndim : d;
    STRATA_CHECK(w >= 0 && w < ndim, op, ": dimension ", d, " is out of range for a ", ndim, "-D tensor");
    return w;
}

}  // namespace

// ---- layout ----

const TensorImpl& Tensor::checked() const {
    STRATA_CHECK(impl_ != nullptr, "use of an undefined Tensor (default-constructed, or a gradient never computed)");
    return *impl_;
}
const Shape& Tensor::shape() const { return checked().shape; }
const Shape& Tensor::strides() const { return checked().strides; }
int64_t Tensor::offset() const { return checked().offset; }
int64_t Tensor::dim() const { return int64_t(checked().shape.size()); }
int64_t Tensor::size(int64_t d) const { return shape()[size_t(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::numel() const { return shape_numel(checked().shape); }
DType Tensor::dtype() const { return checked().dtype; }
Device Tensor::device() const { return checked().storage->device; }

bool Tensor::is_contiguous() const {
    const TensorImpl& t = checked();
    int64_t expected = 1;
    for (size_t i = t.shape.size(); i-- > 0;) {
        if (t.shape[i] == 1) continue;  // the stride of a size-1 dimension never matters
        if (t.strides[i] != expected) return false;
        expected *= t.shape[i];
    }
    return true;
}

void* Tensor::raw() const {
    const TensorImpl& t = checked();
    return static_cast<char*>(t.storage->data) + t.offset * int64_t(dtype_size(t.dtype));
}
float* Tensor::f32() const {
    STRATA_CHECK(dtype() == DType::F32, "expected an F32 tensor, got ", dtype_name(dtype()));
    return static_cast<float*>(raw());
}
int32_t* Tensor::i32() const {
    STRATA_CHECK(dtype() == DType::I32, "expected an I32 tensor, got ", dtype_name(dtype()));
    return static_cast<int32_t*>(raw());
}
int64_t* Tensor::i64() const {
    STRATA_CHECK(dtype() == DType::I64, "expected an I64 tensor, got ", dtype_name(dtype()));
    return static_cast<int64_t*>(raw());
}

// ---- host access ----

float Tensor::item() const {
    STRATA_CHECK(numel() == 1, "item(): the tensor has ", numel(), " elements (shape ", shape_string(),
                 "); item() needs exactly one");
    Tensor h = transfer(contiguous(), kCPU);
    switch (dtype()) {
        case DType::F32: return *h.f32();
        case DType::I32: return float(*h.i32());
        case DType::I64: return float(*h.i64());
    }
    return 0;
}

std::vector<float> Tensor::to_vector() const {
    Tensor h = transfer(detach().contiguous(), kCPU);
    return std::vector<float>(h.f32(), h.f32() + h.numel());
}

std::vector<int64_t> Tensor::to_vector_i64() const {
    Tensor h = transfer(contiguous(), kCPU);
    std::vector<int64_t> v(size_t(h.numel()));
    if (dtype() == DType::I64) std::memcpy(v.data(), h.i64(), v.size() * 8);
    else for (size_t i = 0; i < v.size(); ++i) v[i] = h.i32()[i];
    return v;
}

// ---- views and copies ----

Tensor Tensor::reshape(const Shape& requested) const {
    Shape shape = requested;
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1) {
            STRATA_CHECK(infer < 0, "reshape: only one size may be -1, got ", shape_str(requested));
            infer = int64_t(i);
        } else {
            STRATA_CHECK(shape[i] >= 0, "reshape: negative size in ", shape_str(requested));
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        STRATA_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", shape_string(), " into ",
                     shape_str(requested));
        shape[size_t(infer)] = numel() / known;
    }
    STRATA_CHECK(shape_numel(shape) == numel(), "reshape: cannot reshape ", shape_string(), " (", numel(),
                 " elements) into ", shape_str(requested), " (", shape_numel(shape), " elements)");
    Tensor src = contiguous();
    Tensor out = make_view(src, shape, contiguous_strides(shape), src.offset());
    if (any_requires_grad({src})) {
        Shape in_shape = src.shape();
        record(out, "reshape", {src}, [in_shape](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{dout.reshape(in_shape)};
        });
    }
    return out;
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
    STRATA_CHECK(int64_t(dims.size()) == dim(), "permute: got ", dims.size(), " dims for a ", dim(), "-D tensor");
    Shape shape(dims.size()), strides(dims.size());
    std::vector<int64_t> inverse(dims.size(), -1);
    for (size_t i = 0; i < dims.size(); ++i) {
        int64_t d = wrap_dim(dims[i], dim(), "permute");
        STRATA_CHECK(inverse[size_t(d)] < 0, "permute: dimension ", d, " appears twice");
        inverse[size_t(d)] = int64_t(i);
        shape[i] = this->shape()[size_t(d)];
        strides[i] = this->strides()[size_t(d)];
    }
    Tensor out = make_view(*this, shape, strides, offset());
    if (any_requires_grad({*this})) {
        record(out, "permute", {*this}, [inverse](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{dout.permute(inverse)};
        });
    }
    return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
    std::vector<int64_t> dims(static_cast<size_t>(dim()));
    for (size_t i = 0; i < dims.size(); ++i) dims[i] = int64_t(i);
    std::swap(dims[size_t(wrap_dim(d0, dim(), "transpose"))], dims[size_t(wrap_dim(d1, dim(), "transpose"))]);
    return permute(dims);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
    int64_t w = wrap_dim(d, dim(), "narrow");
    int64_t n = shape()[size_t(w)];
    STRATA_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ", start + length,
                 ") is outside dimension ", d, " of size ", n, " (tensor ", shape_string(), ")");
    Shape shape = this->shape();
    shape[size_t(w)] = length;
    Tensor out = make_view(*this, shape, strides(), offset() + start * strides()[size_t(w)]);
    if (any_requires_grad({*this})) {
        Shape in_shape = this->shape();
        record(out, "narrow", {*this}, [in_shape, w, start, length](const Tensor& dout, const std::vector<bool>&) {
            Tensor dx = zeros(in_shape, DType::F32, dout.device());
            dx.narrow(w, start, length).copy_(dout);
            return std::vector<Tensor>{dx};
        });
    }
    return out;
}

Tensor Tensor::contiguous() const {
    if (is_contiguous()) return *this;
    Tensor out = empty(shape(), dtype(), device());
    copy_strided[device()](out.raw(), layout_of(out), raw(), layout_of(*this), numel(), dtype_size(dtype()));
    if (any_requires_grad({*this})) {
        record(out, "contiguous", {*this}, [](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{dout};
        });
    }
    return out;
}

Tensor Tensor::clone() const {
    Tensor out = empty(shape(), dtype(), device());
    copy_strided[device()](out.raw(), layout_of(out), raw(), layout_of(*this), numel(), dtype_size(dtype()));
    if (any_requires_grad({*this})) {
        record(out, "clone", {*this}, [](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{dout};
        });
    }
    return out;
}

Tensor Tensor::to(Device d) const {
    if (device() == d) return *this;
    Tensor out = transfer(contiguous(), d);
    if (any_requires_grad({*this})) {
        Device from = device();
        record(out, "to", {*this}, [from](const Tensor& dout, const std::vector<bool>&) {
            return std::vector<Tensor>{dout.to(from)};
        });
    }
    return out;
}

Tensor Tensor::detach() const {
    return make_view(*this, shape(), strides(), offset());
}

// ---- in place ----

void Tensor::copy_(const Tensor& src) {
    STRATA_CHECK(src.shape() == shape(), "copy_: source shape ", src.shape_string(), " differs from destination ",
                 shape_string());
    STRATA_CHECK(src.dtype() == dtype(), "copy_: source dtype ", dtype_name(src.dtype()), " differs from destination ",
                 dtype_name(dtype()));
    Tensor s = src.device() == device() ? src : transfer(src.contiguous(), device());
    copy_strided[device()](raw(), layout_of(*this), s.raw(), layout_of(s), numel(), dtype_size(dtype()));
}

void Tensor::fill_(float value) {
    if (dtype() == DType::F32 && is_contiguous()) {
        fill[device()](f32(), value, numel());
        return;
    }
    Tensor host = empty(shape(), dtype(), kCPU);
    int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) {
        if (dtype() == DType::F32) host.f32()[i] = value;
        else if (dtype() == DType::I32) host.i32()[i] = int32_t(value);
        else host.i64()[i] = int64_t(value);
    }
    copy_(host);
}

void Tensor::zero_() {
    if (is_contiguous()) backend(device().type).memset(raw(), 0, size_t(numel()) * dtype_size(dtype()), device().index);
    else fill_(0.0f);
}

void Tensor::set_data(const Tensor& src) {
    TensorImpl& t = *impl_;
    t.storage = src.impl()->storage;
    t.shape = src.shape();
    t.strides = src.strides();
    t.offset = src.offset();
    t.dtype = src.dtype();
}

// ---- autograd ----

bool Tensor::requires_grad() const { return checked().requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
    STRATA_CHECK(is_leaf(), "requires_grad_() applies to leaf tensors; this one was produced by '",
                 impl_->grad_fn->name, "' (use detach() first to make a new leaf)");
    STRATA_CHECK(!on || dtype() == DType::F32, "only F32 tensors can require gradients, got ", dtype_name(dtype()));
    impl_->requires_grad = on;
    return *this;
}

bool Tensor::is_leaf() const { return checked().grad_fn == nullptr; }
Tensor Tensor::grad() const { return Tensor(checked().grad); }
void Tensor::set_grad(const Tensor& g) { checked(), impl_->grad = g.impl_ptr(); }
std::shared_ptr<Node> Tensor::grad_fn() const { return checked().grad_fn; }

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
    run_backward(*this, grad, retain_graph);
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
    if (!t.defined()) return out << "Tensor(undefined)";
    out << "Tensor" << t.shape_string() << " " << dtype_name(t.dtype()) << " " << device_name(t.device());
    if (t.requires_grad()) out << (t.grad_fn() ? " grad_fn=" + t.grad_fn()->name : " requires_grad");
    out << " {";
    int64_t n = t.numel(), shown = n < 16 ? n : 16;
    if (t.dtype() == DType::F32) {
        std::vector<float> v = t.to_vector();
        for (int64_t i = 0; i < shown; ++i) out << (i ? ", " : "") << v[size_t(i)];
    } else {
        std::vector<int64_t> v = t.to_vector_i64();
        for (int64_t i = 0; i < shown; ++i) out << (i ? ", " : "") << v[size_t(i)];
    }
    return out << (shown < n ? ", ...}" : "}");
}

// ---- factories ----

Tensor empty(const Shape& shape, DType dtype, Device device) {
    for (int64_t s : shape) STRATA_CHECK(s >= 0, "negative size in shape ", shape_str(shape));
    STRATA_CHECK(int64_t(shape.size()) <= kMaxDims, "tensors have at most ", kMaxDims, " dimensions, got shape ",
                 shape_str(shape));
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    impl->dtype = dtype;
    return Tensor(impl);
}

Tensor zeros(const Shape& shape, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.zero_();
    return t;
}

Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0f, dtype, device); }

Tensor full(const Shape& shape, float value, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_(value);
    return t;
}

Tensor arange(int64_t n, DType dtype, Device device) {
    Tensor h = empty({n}, dtype, kCPU);
    for (int64_t i = 0; i < n; ++i) {
        if (dtype == DType::F32) h.f32()[i] = float(i);
        else if (dtype == DType::I32) h.i32()[i] = int32_t(i);
        else h.i64()[i] = i;
    }
    return h.to(device);
}

Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }

Tensor randn(const Shape& shape, Generator& gen, Device device) {
    Tensor h = empty(shape, DType::F32, kCPU);
    for (int64_t i = 0, n = h.numel(); i < n; ++i) h.f32()[i] = gen.normal();
    return h.to(device);
}
Tensor randn(const Shape& shape, Device device) { return randn(shape, default_generator(), device); }

Tensor rand_uniform(const Shape& shape, float low, float high, Generator& gen, Device device) {
    Tensor h = empty(shape, DType::F32, kCPU);
    for (int64_t i = 0, n = h.numel(); i < n; ++i) h.f32()[i] = gen.uniform(low, high);
    return h.to(device);
}
Tensor rand_uniform(const Shape& shape, float low, float high, Device device) {
    return rand_uniform(shape, low, high, default_generator(), device);
}

namespace {
Tensor from_bytes(const void* data, size_t count, const Shape& shape, DType dtype, Device device) {
    STRATA_CHECK(int64_t(count) == shape_numel(shape), "from_vector: ", count, " values do not fill shape ",
                 shape_str(shape), " (", shape_numel(shape), " elements)");
    Tensor h = empty(shape, dtype, kCPU);
    if (count) std::memcpy(h.raw(), data, count * dtype_size(dtype));
    return h.to(device);
}
}  // namespace

Tensor from_vector(const std::vector<float>& d, const Shape& s, Device dev) {
    return from_bytes(d.data(), d.size(), s, DType::F32, dev);
}
Tensor from_vector_i32(const std::vector<int32_t>& d, const Shape& s, Device dev) {
    return from_bytes(d.data(), d.size(), s, DType::I32, dev);
}
Tensor from_vector_i64(const std::vector<int64_t>& d, const Shape& s, Device dev) {
    return from_bytes(d.data(), d.size(), s, DType::I64, dev);
}

// ---- argument checks ----

void check_dtype(const Tensor& t, DType dtype, const char* op, const char* arg) {
    STRATA_CHECK(t.defined(), op, ": ", arg, " is an undefined tensor");
    STRATA_CHECK(t.dtype() == dtype, op, ": ", arg, " must be ", dtype_name(dtype), ", got ", dtype_name(t.dtype()));
}

void check_dim(const Tensor& t, int64_t dim, const char* op, const char* arg, const char* layout) {
    STRATA_CHECK(t.defined(), op, ": ", arg, " is an undefined tensor");
    STRATA_CHECK(t.dim() == dim, op, ": ", arg, " must be ", dim, "-D ", layout, ", got shape ", t.shape_string());
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
    STRATA_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", a.shape_string(), " vs ", b.shape_string());
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
    STRATA_CHECK(a.device() == b.device(), op, ": tensors are on different devices: ", device_name(a.device()),
                 " and ", device_name(b.device()), "; move one with .to(device)");
}

}  // namespace strata
