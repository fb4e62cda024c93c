// The table of op cases (ggml's test-backend-ops idea): every op is listed here once per shape and option set
// worth testing, and one driver runs every entry through every generic check:
//   - tests/test_op_cases.cpp (CPU): the finite-difference gradient check of every F32 input and parameter
//     (tests/gradcheck.h), the same output and gradients on 1 and 4 threads, and the same output and gradients
//     from non-contiguous (transposed) inputs;
//   - cuda/tests/test_op_cases.cpp (emulated and real CUDA programs): the device's output and gradients against the
//     CPU's, for every entry. The emulated program runs twice, its GPU threads resumed in forward and in reverse
//     order (cuda_emu_tests, cuda_emu_tests_reverse in cuda/cuda.mk), so parity holds in both orders.
// Both drivers fail if a registered layer or kernel has no entry (op_coverage_gaps below), so a new op is not
// tested until it adds its entries here. Per-op files (tests/layers/test_<op>.cpp, cuda/tests/test_<op>.cpp) keep
// only what a table cannot say: hand-computed values, PyTorch fixtures, errors and op-specific properties.
//
// An entry's function takes every input, parameters included (weights are inputs, so they are gradient-checked),
// and must build whatever else it needs (running statistics, a generator) on the device of its inputs, so that the
// same entry runs on the CPU and on a device.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "cuda/tests/gemm_parity.h"
#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/dispatch.h"
#include "framework/random.h"
#include "framework/registry.h"
#include "framework/tensor.h"
#include "layers/adaptive_avg_pool2d.h"
#include "layers/add.h"
#include "layers/avgpool2d.h"
#include "layers/batchnorm2d.h"
#include "layers/concat.h"
#include "layers/conv2d.h"
#include "layers/conv2d_winograd.h"
#include "layers/cross_entropy.h"
#include "layers/dropout2d.h"
#include "layers/linear.h"
#include "layers/maxpool2d.h"
#include "layers/mean.h"
#include "layers/mul.h"
#include "layers/relu.h"
#include "layers/sum.h"
#include "layers/upsample_bilinear2d.h"
#include "tests/gradcheck.h"

namespace strata::testing {

struct OpCase {
    std::string op;       // the op's name: its file, its registry key, the prefix of its kernels' names
    std::string variant;  // what this entry exercises
    // Makes the inputs from a generator. F32 inputs get gradients; others (labels) are passed as they are.
    std::function<std::vector<Tensor>(Generator&)> inputs;
    std::function<Tensor(const std::vector<Tensor>&)> f;
    GradcheckOptions grad = {};
    // false only for entries sized for the thread check (planes enough for parallel_for to split), too large
    // for finite differences; their shapes' gradients are checked by smaller entries of the same op.
    bool gradcheck = true;
    // CPU against CUDA, on the output and every gradient: 0 means bitwise equal, else the largest absolute
    // difference allowed (the per-op parity files derive the tight tolerances; these are for these sizes).
    double parity_tol = 0;
    // The inputs have no point near a kink (max-pool with distinct values): the gradient check must compare every
    // point it samples, none skipped.
    bool no_kinks = false;
    // Where the bound depends on the data: the tolerance of each element of result k (0: the output, k > 0: the
    // gradient of the k-th F32 input) given the inputs, the output gradient dy and the CPU's result; replaces
    // parity_tol when set (all zeros: bitwise equal).
    std::function<std::vector<double>(const std::vector<Tensor>& inputs, const Tensor& dy,
                                      const std::vector<float>& want, size_t k)>
        parity_bound = {};
};

inline double max_abs(const Tensor& t) {
    double m = 0;
    for (float e : t.to_vector()) m = std::max(m, double(std::fabs(e)));
    return m;
}

// CPU/CUDA bound of adaptive_avg_pool2d. The backward is a gather in the CPU's order: bitwise equal. The forward
// adds each bin with a warp (32 strided partial sums, then a shuffle tree) where the CPU adds row by row, so only
// the rounding differs. For a bin of n elements, each float sum is within (n - 1) * eps * sum|x| of the exact sum
// (the standard bound, whatever the order), so the two means differ by at most 2 (n - 1) * eps * max|x| plus one
// rounding of the division each.
inline std::vector<double> adaptive_avg_pool2d_bound(const std::vector<Tensor>& in, const Tensor& dy,
                                                     const std::vector<float>& want, size_t k) {
    if (k > 0) return std::vector<double>(want.size(), 0.0);
    const Tensor& x = in[0];
    // the largest bin holds at most ceil(I / O) + 1 elements per axis
    int64_t bin_h = std::min(x.size(2), (x.size(2) + dy.size(2) - 1) / dy.size(2) + 1);
    int64_t bin_w = std::min(x.size(3), (x.size(3) + dy.size(3) - 1) / dy.size(3) + 1);
    double tol = 2.0 * double(bin_h * bin_w - 1) * FLT_EPSILON * max_abs(x) + 2.0 * FLT_EPSILON * max_abs(x);
    return std::vector<double>(want.size(), tol);
}

// CPU/CUDA bound of upsample_bilinear2d. Both kernels do the same operations in the same order (the backward's
// gather adds in the CPU's order), but either compiler may fuse a * b + c into one rounding, so they differ by a
// few roundings:
//   - a weight: the source coordinate src < in may differ by one rounding, eps * in, and so may the weights;
//   - y is a blend of 4 values with weights summing to 1: 3 products and 3 sums, each within eps/2 of max|x| on
//     either side, plus the weights' difference times |x[i1] - x[i0]| <= 2 max|x|: (3 + 2 * 2 in) eps max|x|;
//   - dx sums the weighted dy of the K outputs that read it (K <= (2 ceil(out / in) + 2) per axis), each term and
//     each running sum off by as much: K (4 + 4 in) eps max|dy|.
// These bounds are loose (the observed differences are an ulp or two); a wrong tap or a missed output is far
// larger.
inline std::vector<double> upsample_bilinear2d_bound(const std::vector<Tensor>& in, const Tensor& dy,
                                                     const std::vector<float>& want, size_t k) {
    int64_t in_h = in[0].size(2), in_w = in[0].size(3), out_h = dy.size(2), out_w = dy.size(3);
    double size = double(std::max(in_h, in_w));
    if (k == 0) return std::vector<double>(want.size(), (3 + 4 * size) * FLT_EPSILON * max_abs(in[0]));
    double taps = double((2 * ((out_h + in_h - 1) / in_h) + 2) * (2 * ((out_w + in_w - 1) / in_w) + 2));
    return std::vector<double>(want.size(), taps * (4 + 4 * size) * FLT_EPSILON * max_abs(dy));
}

// CPU/CUDA bound of sum and mean (mean calls sum's kernels with scale = 1/len). Both sum in double and round once,
// in different orders, so the forward may differ in the last bit of the float: 1e-6 relative per element (a float
// ulp is 1.2e-7 relative). The backward (scale * dy, one float multiply) is bitwise equal.
inline std::vector<double> sum_bound(const std::vector<Tensor>&, const Tensor&, const std::vector<float>& want,
                                     size_t k) {
    std::vector<double> tol(want.size(), 0.0);
    if (k == 0)
        for (size_t i = 0; i < want.size(); ++i) tol[i] = 1e-6 * std::fabs(double(want[i]));
    return tol;
}

// CPU/CUDA bound of linear (cuBLAS against OpenBLAS; cuda/tests/gemm_parity.h): y[r, j] sums `in` products plus
// the bias, dx[r, k] sums `out` products, dweight[j, k] sums `rows` products; each element may differ by
// (terms + 2) * FLT_EPSILON * (the same sum over absolute values), computed with the CPU op on |x|, |w|, |dy|.
// dbias (sum's kernel, double accumulation on both sides) is held to the same bound with `rows` terms.
inline std::vector<double> linear_bound(const std::vector<Tensor>& in, const Tensor& dy, const std::vector<float>&,
                                        size_t k) {
    NoGradGuard no_grad;
    int64_t features = in[0].shape().back(), out = in[1].size(0), rows = in[0].numel() / features;
    Tensor x = abs_of(in[0]).reshape({rows, features}), w = abs_of(in[1]), d = abs_of(dy).reshape({rows, out});
    if (k == 0) return sum_tolerance(linear(x, w, in.size() > 2 ? abs_of(in[2]) : Tensor()), features + 2);
    if (k == 1) return sum_tolerance(linear(d, w.transpose(0, 1)), out + 2);                    // |dy| |w|
    if (k == 2) return sum_tolerance(linear(d.transpose(0, 1), x.transpose(0, 1)), rows + 2);  // |dy|^T |x|
    return sum_tolerance(sum(d, 0), rows + 2);
}

// CPU/CUDA bound of conv2d (im2col/col2im kernels + cuBLAS; cuda/tests/gemm_parity.h): y sums C*R*S products plus
// the bias, dx[n,c,h,w] sums at most K*R*S products (the taps that read it), dweight[k,c,r,s] sums N*P*Q products
// and dbias N*P*Q values; each element may differ by (terms + 2) * FLT_EPSILON * (the same sum over absolute
// values), computed with the CPU op on |x|, |w|, |dy|. The permutations (im2col, ycol) are exact, and col2im adds
// in the CPU's order.
inline std::function<std::vector<double>(const std::vector<Tensor>&, const Tensor&, const std::vector<float>&, size_t)>
conv2d_bound(const Conv2dOptions& o, Conv2dAlgo algo) {
    return [o, algo](const std::vector<Tensor>& in, const Tensor& dy, const std::vector<float>&, size_t k) {
        NoGradGuard no_grad;
        Conv2dAlgoScope scope(algo);
        Conv2dShape s = conv2d_shape(in[0].shape(), in[1].shape(), o);
        Tensor ax = abs_of(in[0]), aw = abs_of(in[1]), ady = abs_of(dy);
        const int64_t crs = s.C * s.R * s.S, krs = s.K * s.R * s.S, npq = s.N * s.P * s.Q;
        // y and dx by the CPU's Winograd path: its own bound on top (tests/layers/test_conv2d_winograd.cpp)
        s.implicit_gemm = conv2d_use_implicit_gemm(Device{});
        const bool winograd = conv2d_use_winograd(s);
        const int64_t y_terms = crs + 2 + (winograd ? 256 * (s.C + 16) : 0);
        const int64_t dx_terms = krs + 2 + (winograd ? 256 * (s.K + 16) : 0);
        if (k == 0) return sum_tolerance(conv2d(ax, aw, in.size() > 2 ? abs_of(in[2]) : Tensor(), o), y_terms);
        if (k == 1) return sum_tolerance(conv2d_grads(ady, in[0], aw, o, true, false, false).dx, dx_terms);
        if (k == 2) return sum_tolerance(conv2d_grads(ady, ax, in[1], o, false, true, false).dweight, npq + 2);
        return sum_tolerance(conv2d_grads(ady, in[0], aw, o, false, false, true).dbias, npq + 2);
    };
}

// CPU/CUDA bound of cross_entropy: the per-pixel losses are the same float formulas (expf/logf on a GPU are within
// 1-2 ulp of the host's) and the mean is a double sum in another order: 1e-5 relative on the loss, 1e-5 of the
// largest gradient on dlogits.
inline std::vector<double> cross_entropy_bound(const std::vector<Tensor>&, const Tensor&,
                                               const std::vector<float>& want, size_t) {
    double largest = 1e-30;
    for (float w : want) largest = std::max(largest, double(std::fabs(w)));
    return std::vector<double>(want.size(), 1e-5 * largest);
}

// randn inputs of the given shapes.
inline std::function<std::vector<Tensor>(Generator&)> randn_inputs(std::vector<Shape> shapes) {
    return [shapes](Generator& gen) {
        std::vector<Tensor> xs;
        for (const Shape& s : shapes) xs.push_back(randn(s, gen));
        return xs;
    };
}

// Distinct values 0.1 apart in a random order: far more than gradcheck's eps (1e-2), so no perturbation changes
// which element wins a max-pool window, and the check meets no kinks.
inline Tensor distinct_values(const Shape& shape, Generator& gen) {
    int64_t n = shape_numel(shape);
    std::vector<float> v(size_t(n), 0.0f);
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 0.1f * float(i - n / 2);
    for (int64_t i = n - 1; i > 0; --i) std::swap(v[size_t(i)], v[size_t(gen.randint(i + 1))]);
    return from_vector(v, shape);
}

// Cross-entropy's inputs: logits (N, C[, H, W]) times `scale` and labels (N[, H, W]), every `ignore_every`-th label
// (0: none) set to ignore_index.
inline std::function<std::vector<Tensor>(Generator&)> logits_and_labels(Shape logits, int64_t ignore_every,
                                                                       int64_t ignore_index, float scale = 1) {
    return [=](Generator& gen) {
        Shape target_shape = logits.size() == 4 ? Shape{logits[0], logits[2], logits[3]} : Shape{logits[0]};
        std::vector<int32_t> labels(size_t(shape_numel(target_shape)));
        for (size_t i = 0; i < labels.size(); ++i)
            labels[i] = ignore_every && i % size_t(ignore_every) == 1 ? int32_t(ignore_index)
                                                                      : int32_t((i * 7 + 2) % size_t(logits[1]));
        return std::vector<Tensor>{mul(randn(logits, gen), scale), from_vector_i32(labels, target_shape)};
    };
}

// conv2d's entries: strides, dilations, padding, non-square kernels and every path of layers/conv2d.cpp (listed
// apart so that cuda/tests/test_conv2d.cpp can check that they reach each path).
struct ConvCase {
    const char* name;
    Shape x, w;
    Conv2dOptions o;
    bool bias;
    Conv2dAlgo algo = Conv2dAlgo::kAuto;  // conv_algo for the case (forward and backward), on the CPU
};

inline const std::vector<ConvCase>& conv2d_cases() {
    static const std::vector<ConvCase> cases = {
        {"3x3 pad 1, odd sizes", {2, 3, 5, 4}, {2, 3, 3, 3}, {.padding = 1}, true},
        {"3x3 stride 2 pad 1", {1, 2, 7, 6}, {3, 2, 3, 3}, {.stride = 2, .padding = 1}, false},
        {"3x3 dilation 2 pad 2", {2, 2, 6, 5}, {2, 2, 3, 3}, {.padding = 2, .dilation = 2}, true},
        {"3x3 dilation 4 pad 4", {1, 2, 9, 7}, {2, 2, 3, 3}, {.padding = 4, .dilation = 4}, true},
        {"1x1 stride 1, one image (no im2col)", {1, 3, 4, 5}, {2, 3, 1, 1}, {}, true},
        {"1x1 stride 1, 2 images of 32x32 (no im2col, one image per GEMM)", {2, 2, 32, 32}, {2, 2, 1, 1}, {}, true},
        {"1x1 stride 2", {2, 3, 5, 5}, {2, 3, 1, 1}, {.stride = 2}, false},
        {"2x3 kernel, stride (2,1), pad (1,0), dilation (1,2)", {2, 2, 6, 7}, {2, 2, 2, 3},
         {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}, true},
        {"3x3 pad 1, no bias", {1, 2, 6, 5}, {3, 2, 3, 3}, {.padding = 1}, false},
        // the paths of layers/conv2d.cpp (cuda/tests/test_conv2d.cpp checks that these entries reach each one)
        {"3x3 same, small maps: grouped", {2, 3, 9, 8}, {4, 3, 3, 3}, {.padding = 1}, true},
        {"stride 2", {2, 3, 11, 10}, {5, 3, 3, 3}, {.stride = 2, .padding = 1}, true},
        {"dilation 2 (layer3)", {1, 2, 13, 12}, {3, 2, 3, 3}, {.padding = 2, .dilation = 2}, false},
        {"dilation 4 (layer4)", {2, 2, 17, 15}, {3, 2, 3, 3}, {.padding = 4, .dilation = 4}, true},
        {"asymmetric; stride 3 > kernel 2", {1, 3, 10, 9}, {2, 3, 2, 3},
         {.stride = {3, 2}, .padding = {0, 1}, .dilation = {1, 2}}, true},
        {"5x1 kernel", {2, 2, 7, 7}, {3, 2, 5, 1}, {.stride = {1, 2}, .padding = {2, 0}}, false},
        {"the kernel covers the map: 1x1", {2, 2, 5, 5}, {3, 2, 5, 5}, {}, true},
        {"pointwise, grouped (copies x)", {2, 4, 7, 6}, {5, 4, 1, 1}, {}, true},
        {"PSPNet's 1x1 pooled map", {4, 6, 1, 1}, {3, 6, 1, 1}, {}, false},
        {"pointwise, one image: no col", {2, 2, 32, 33}, {3, 2, 1, 1}, {}, true},
        {"1x1 stride 2: needs col", {2, 3, 8, 9}, {4, 3, 1, 1}, {.stride = 2}, false},
        {"groups of 2, last group 1", {3, 2, 24, 25}, {3, 2, 3, 3}, {.padding = 1}, true},
        {"one image per GEMM, im2col", {2, 1, 34, 33}, {2, 1, 3, 3}, {.padding = 1}, true},
        {"one image per GEMM, im2col, dilated", {2, 1, 33, 34}, {2, 1, 3, 3}, {.padding = 2, .dilation = 2}, false},
        // the CPU's Winograd path (layers/conv2d_winograd.cpp; auto takes it for bigger convs), dilated: polyphase
        {"Winograd: 3x3 dilation 2", {2, 3, 9, 7}, {4, 3, 3, 3}, {.padding = 2, .dilation = 2}, true,
         Conv2dAlgo::kWinograd},
        {"Winograd: 3x3 pad 1, odd sizes", {1, 5, 7, 6}, {3, 5, 3, 3}, {.padding = 1}, false, Conv2dAlgo::kWinograd},
    };
    return cases;
}

inline std::vector<OpCase> make_op_cases() {
    std::vector<OpCase> cases;
    // Inputs of more than 50000 elements (sized for CUDA grids) get a sample of 20 points per input: every finite
    // difference evaluates the whole op, and the same formulas are checked point by point at the smaller sizes.
    auto add_case = [&](OpCase c) {
        Generator probe(0);
        for (const Tensor& x : c.inputs(probe))
            if (x.numel() > 50000) c.grad.max_points = 20;
        cases.push_back(std::move(c));
    };

    // ---- elementwise: odd sizes, one element, a 0-D tensor, and 70001 elements = 274 CUDA blocks of 256 threads,
    // the last one mostly empty ----
    const Shape elementwise[] = {{2, 3, 4, 5}, {1, 7, 3, 9}, {13}, {}, {1}, {3, 7}, {2, 3, 33, 17}, {70001}};
    for (const Shape& s : elementwise) {
        add_case({"add", shape_str(s), randn_inputs({s, s}), [](const auto& in) { return add(in[0], in[1]); }});
        add_case({"relu", shape_str(s), randn_inputs({s}), [](const auto& in) { return relu(in[0]); }});
        for (float scale : {0.4f, -2.5f, -3.0f, 0.0f})
            add_case({"mul", str(scale, " ", shape_str(s)), randn_inputs({s}),
                      [scale](const auto& in) { return mul(in[0], scale); }});
    }

    // ---- reductions: sum, and mean (which calls sum's kernels with scale = 1/len). The shapes cover the three
    // CUDA forward kernels: the full sum (one block), inner >= 32 (32 x 8 column tiles, the last partly filled) and
    // inner < 32 (a warp per output) ----
    constexpr int64_t kAll = -100;  // the full reduction
    auto add_reduction = [&](const Shape& s, int64_t dim, bool keepdim, bool gradcheck) {
        std::string v =
            dim == kAll ? "all " + shape_str(s) : str(shape_str(s), " dim ", dim, keepdim ? " keepdim" : "");
        bool all = dim == kAll;
        OpCase sum_case{"sum", v, randn_inputs({s}), [all, dim, keepdim](const auto& in) {
                            return all ? sum(in[0]) : sum(in[0], dim, keepdim);
                        }, {}, gradcheck};
        OpCase mean_case{"mean", v, randn_inputs({s}), [all, dim, keepdim](const auto& in) {
                             return all ? mean(in[0]) : mean(in[0], dim, keepdim);
                         }, {}, gradcheck};
        sum_case.parity_bound = mean_case.parity_bound = sum_bound;
        add_case(sum_case);
        add_case(mean_case);
    };
    for (Shape s : {Shape{2, 3, 4, 5}, Shape{3, 7, 5}, Shape{13}}) {
        add_reduction(s, kAll, false, true);
        for (int64_t dim = -1; dim < int64_t(s.size()); ++dim)
            for (bool keepdim : {false, true}) add_reduction(s, dim, keepdim, true);
    }
    for (Shape s : {Shape{1}, Shape{5}, Shape{3, 7}, Shape{2, 3, 33, 17}, Shape{70001}})
        add_reduction(s, kAll, false, true);
    add_case({"sum", "0-D", randn_inputs({{}}), [](const auto& in) { return sum(in[0]); }});
    struct DimCase {
        Shape shape;
        int64_t dim;
    };
    for (DimCase c : {DimCase{{4, 6}, 1}, DimCase{{2, 3, 33, 17}, 0}, DimCase{{2, 3, 33, 17}, 1},
                      DimCase{{2, 3, 33, 17}, 2}, DimCase{{2, 3, 33, 17}, 3}, DimCase{{2, 3, 33, 17}, -1},
                      DimCase{{70, 40}, 0},      // inner 40: two column tiles, the second 8/32 full
                      DimCase{{70, 40}, 1},      // inner 1: a warp per row
                      DimCase{{3, 300, 5}, 1},   // inner 5: a warp per output, strided reads
                      DimCase{{2, 500, 64}, 1},  // inner 64: column tiles over a long len
                      DimCase{{1, 1, 1}, 1},     // len 1
                      DimCase{{257, 3}, 1}})     // more outputs than one block's warps
        for (bool keepdim : {false, true}) add_reduction(c.shape, c.dim, keepdim, true);
    // 256 x 64 x 4 x 4: chunks enough for parallel_for
    add_reduction({16, 64, 4, 4}, 1, false, false);
    add_reduction({16, 64, 4, 4}, kAll, false, false);
    // many parallel chunks, odd sizes so that the chunks are uneven
    for (int64_t dim : {kAll, int64_t(0), int64_t(1)}) add_reduction({3, 1000003}, dim, false, false);
    add_reduction({1000, 37, 29}, 1, false, false);

    // ---- concat ----
    struct ConcatCase {
        int64_t dim;
        std::vector<Shape> shapes;
    };
    for (const ConcatCase& c : {ConcatCase{0, {{1, 3, 2, 2}, {2, 3, 2, 2}}},
                                ConcatCase{1, {{2, 3, 3, 2}, {2, 1, 3, 2}, {2, 2, 3, 2}}},
                                ConcatCase{2, {{1, 2, 1, 3}, {1, 2, 3, 3}, {1, 2, 2, 3}, {1, 2, 1, 3}}},
                                ConcatCase{3, {{2, 2, 3, 1}, {2, 2, 3, 4}}}, ConcatCase{-1, {{3, 5}, {3, 2}, {3, 1}}},
                                ConcatCase{-3, {{2, 3, 4}, {1, 3, 4}}}}) {
        int64_t dim = c.dim;
        add_case({"concat", str("dim ", dim, " of ", c.shapes.size()), randn_inputs(c.shapes),
                  [dim](const auto& in) { return concat(in, dim); }});
    }
    add_case({"concat", "PSPNet's channel concat", randn_inputs({{2, 3, 4, 5}, {2, 1, 4, 5}, {2, 4, 4, 5}}),
              [](const auto& in) { return concat(in, 1); }});
    add_case({"concat", "an empty input", randn_inputs({{2, 0, 3}, {2, 2, 3}}),
              [](const auto& in) { return concat(in, 1); }});
    add_case({"concat", "rows of several CUDA blocks", randn_inputs({{1, 300, 2}, {1, 7, 2}}),
              [](const auto& in) { return concat(in, 1); }});
    add_case({"concat", "more rows than a CUDA grid has block rows (65535)", randn_inputs({{66000, 1}, {66000, 2}}),
              [](const auto& in) { return concat(in, 1); }, {}, false});

    // ---- linear (weights are inputs): 2-D and 3-D inputs of odd sizes, in_features 1 ----
    struct LinearCase {
        Shape x;
        int64_t out;
    };
    for (LinearCase c : {LinearCase{{5, 7}, 3}, LinearCase{{2, 3, 2, 5}, 4}, LinearCase{{6}, 1}, LinearCase{{1, 9}, 11},
                         LinearCase{{1, 1}, 1}, LinearCase{{7, 5}, 3}, LinearCase{{2, 3, 17}, 9},
                         LinearCase{{65, 100}, 33}, LinearCase{{3, 1}, 40}}) {
        int64_t in = c.x.back();
        OpCase with_bias{"linear", shape_str(c.x) + " with bias", randn_inputs({c.x, {c.out, in}, {c.out}}),
                         [](const auto& in) { return linear(in[0], in[1], in[2]); }};
        OpCase without_bias{"linear", shape_str(c.x) + " without bias", randn_inputs({c.x, {c.out, in}}),
                            [](const auto& in) { return linear(in[0], in[1]); }};
        with_bias.parity_bound = without_bias.parity_bound = linear_bound;
        add_case(with_bias);
        add_case(without_bias);
    }

    // ---- conv2d ----
    for (const ConvCase& c : conv2d_cases()) {
        Conv2dOptions o = c.o;
        Conv2dAlgo algo = c.algo;
        OpCase oc{"conv2d", c.name, randn_inputs({c.x, c.w}), [o, algo](const auto& in) {
                      Conv2dAlgoScope scope(algo);
                      return conv2d(in[0], in[1], Tensor(), o);
                  }};
        if (c.bias) {
            oc.inputs = randn_inputs({c.x, c.w, {c.w[0]}});
            oc.f = [o, algo](const auto& in) {
                Conv2dAlgoScope scope(algo);
                return conv2d(in[0], in[1], in[2], o);
            };
        }
        oc.parity_bound = conv2d_bound(o, algo);
        // conv2d is linear in each input, so central differences are exact at any step: a large one divides the
        // float rounding of the forward (Winograd's is ~10x the direct sum's) by more
        oc.grad.eps = 0.5;
        add_case(oc);
    }

    // ---- pooling ----
    struct AvgCase {
        Shape shape;
        AvgPool2dOptions o;
    };
    // every divisor rule: padding, ceil_mode windows that hang past the padding (the NOTE in layers/avgpool2d.cpp),
    // count_include_pad both ways
    for (bool include : {true, false}) {
        for (AvgCase c : {AvgCase{{1, 2, 7, 7}, {.kernel_size = 3, .stride = 2, .padding = 1}},
                          AvgCase{{2, 1, 6, 5}, {.kernel_size = {2, 3}, .stride = {2, 1}, .padding = 1,
                                                 .ceil_mode = true}},
                          AvgCase{{1, 2, 5, 5}, {.kernel_size = 2, .stride = 2, .padding = 1, .ceil_mode = true}},
                          AvgCase{{1, 1, 8, 7}, {.kernel_size = 3, .ceil_mode = true}},
                          AvgCase{{2, 5, 6, 3}, {.kernel_size = 3, .stride = 2, .padding = 1}},
                          AvgCase{{2, 3, 9, 11}, {.kernel_size = 3, .stride = 2, .padding = 1}},
                          AvgCase{{1, 2, 8, 8}, {.kernel_size = 2}},
                          AvgCase{{1, 1, 3, 3}, {.kernel_size = 2, .stride = 2, .ceil_mode = true}},
                          AvgCase{{2, 1, 7, 10}, {.kernel_size = {3, 2}, .stride = {2, 3}, .padding = {1, 1},
                                                  .ceil_mode = true}},
                          AvgCase{{1, 3, 5, 5}, {.kernel_size = 3, .stride = 1, .padding = 1}},
                          AvgCase{{2, 2, 13, 6}, {.kernel_size = {4, 2}, .stride = {3, 1}, .padding = {2, 1},
                                                  .ceil_mode = true}},
                          AvgCase{{1, 1, 1, 1}, {.kernel_size = 1}},
                          AvgCase{{3, 1, 4, 9}, {.kernel_size = {1, 5}, .stride = {1, 2}, .padding = {0, 2}}}}) {
            AvgPool2dOptions o = c.o;
            o.count_include_pad = include;
            add_case({"avgpool2d", str(shape_str(c.shape), include ? " count_include_pad" : ""),
                      randn_inputs({c.shape}), [o](const auto& in) { return avgpool2d(in[0], o); }});
        }
    }
    // 64 planes of 32x32: enough for parallel_for to split the planes over the threads
    add_case({"avgpool2d", "threads", randn_inputs({{4, 16, 32, 32}}),
              [](const auto& in) { return avgpool2d(in[0], {.kernel_size = 3, .stride = 2, .padding = 1}); }, {},
              false});

    struct MaxCase {
        Shape shape;
        MaxPool2dOptions o;
    };
    for (const MaxCase& c :
         {MaxCase{{1, 2, 7, 7}, {.kernel_size = 3, .stride = 2, .padding = 1}},
          MaxCase{{2, 1, 6, 5}, {.kernel_size = {2, 3}, .stride = {2, 1}, .padding = {1, 1}, .ceil_mode = true}},
          MaxCase{{1, 2, 5, 5}, {.kernel_size = 2, .stride = 2, .padding = 1, .ceil_mode = true}},
          MaxCase{{1, 1, 6, 7}, {.kernel_size = 3, .ceil_mode = true}},
          MaxCase{{2, 2, 5, 6}, {.kernel_size = 3, .stride = 1, .padding = 1}},
          MaxCase{{2, 3, 5, 6}, {.kernel_size = 3, .stride = 2, .padding = 1}}}) {
        MaxPool2dOptions o = c.o;
        add_case({"maxpool2d", shape_str(c.shape),
                  [shape = c.shape](Generator& gen) { return std::vector<Tensor>{distinct_values(shape, gen)}; },
                  [o](const auto& in) { return maxpool2d(in[0], o); }, {}, true, 0, true});
    }
    add_case({"maxpool2d", "threads", randn_inputs({{4, 16, 32, 32}}),
              [](const auto& in) { return maxpool2d(in[0], {.kernel_size = 3, .stride = 2, .padding = 1}); }, {},
              false});

    struct AdaptiveCase {
        Shape shape;
        Size2 out;
    };
    for (AdaptiveCase c : {AdaptiveCase{{1, 2, 13, 13}, 1}, AdaptiveCase{{1, 2, 13, 13}, 2},
                           AdaptiveCase{{1, 2, 13, 13}, 3}, AdaptiveCase{{1, 2, 13, 13}, 6},
                           AdaptiveCase{{2, 1, 7, 9}, {3, 2}},
                           AdaptiveCase{{1, 2, 3, 4}, {5, 7}},   // output larger than the input
                           AdaptiveCase{{1, 1, 12, 12}, 6},      // bins that divide evenly (PSPNet at 60x60)
                           AdaptiveCase{{2, 3, 7, 6}, {3, 2}},
                           AdaptiveCase{{2, 3, 12, 12}, {6, 6}}, // bins divide the input
                           AdaptiveCase{{2, 3, 13, 11}, {6, 4}}, // overlapping bins of different sizes
                           AdaptiveCase{{1, 2, 2, 3}, {3, 5}},   // output larger than input: repeated 1-element bins
                           AdaptiveCase{{1, 2, 31, 29}, {1, 1}}, // one bin of 899 elements
                           AdaptiveCase{{1, 1, 5, 70}, {2, 1}},  // bins wider than a warp: lanes loop along rows
                           AdaptiveCase{{2, 2, 20, 20}, {3, 2}}, // PSPNet-like bins, 7x10 with overlap
                           AdaptiveCase{{1, 1, 1, 1}, {2, 3}}}) {
        Size2 out = c.out;
        OpCase oc{"adaptive_avg_pool2d", str(shape_str(c.shape), " -> ", out.h, "x", out.w), randn_inputs({c.shape}),
                  [out](const auto& in) { return adaptive_avg_pool2d(in[0], out); }};
        oc.parity_bound = adaptive_avg_pool2d_bound;
        add_case(oc);
    }
    OpCase adaptive_threads{"adaptive_avg_pool2d", "threads", randn_inputs({{4, 16, 32, 32}}),
                            [](const auto& in) { return adaptive_avg_pool2d(in[0], 6); }, {}, false};
    adaptive_threads.parity_bound = adaptive_avg_pool2d_bound;
    add_case(adaptive_threads);

    // ---- upsampling: align_corners both ways, up- and downsampling, by size and by scale factor (PyTorch's
    // 1/scale coordinate rule, and an axis that keeps its size) ----
    struct UpCase {
        Shape in;
        Size2 out;
    };
    for (UpCase c : {UpCase{{2, 3, 4, 5}, {7, 9}}, UpCase{{1, 2, 7, 9}, {3, 4}}, UpCase{{1, 2, 5, 3}, {2, 8}},
                     UpCase{{1, 2, 1, 1}, {4, 3}}, UpCase{{1, 1, 6, 6}, {13, 13}}, UpCase{{1, 2, 3, 3}, {1, 1}},
                     UpCase{{2, 3, 5, 7}, {11, 9}},    // upsampling, odd sizes
                     UpCase{{1, 2, 6, 6}, {41, 41}},   // PSPNet's pyramid: 6 -> 8k + 1, every 1/8 pixel
                     UpCase{{1, 2, 9, 8}, {4, 3}},     // downsampling: some inputs are read by no output
                     UpCase{{1, 1, 1, 1}, {5, 4}},     // the pyramid's 1x1 branch
                     UpCase{{1, 2, 3, 4}, {1, 1}},     // one output: align_corners maps it to the corner
                     UpCase{{2, 1, 4, 5}, {4, 13}},    // one axis unchanged
                     UpCase{{1, 1, 2, 2}, {2, 3100}}}) // too wide for the CUDA backward's shared-memory tap table
        for (bool align : {true, false}) {
            Size2 out = c.out;
            OpCase oc{"upsample_bilinear2d",
                      str(shape_str(c.in), " -> ", out.h, "x", out.w, align ? " align_corners" : ""),
                      randn_inputs({c.in}),
                      [out, align](const auto& in) { return upsample_bilinear2d(in[0], out, align); }};
            oc.parity_bound = upsample_bilinear2d_bound;
            add_case(oc);
        }
    struct ScaleCase {
        Shape in;
        double h, w;
    };
    for (ScaleCase c : {ScaleCase{{1, 2, 5, 6}, 1.5, 0.7},
                        ScaleCase{{1, 2, 5, 7}, 1.5, 2.0},   // 5 * 1.5 = 7.5 -> 7 rows, coordinates at 1/1.5
                        ScaleCase{{2, 1, 6, 5}, 1.0, 2.5},   // an axis that keeps its size is copied
                        ScaleCase{{1, 2, 9, 10}, 0.5, 0.7},  // downsampling by a factor
                        ScaleCase{{1, 1, 3, 3}, 8.0, 8.0}})
        for (bool align : {true, false}) {
            double h = c.h, w = c.w;
            OpCase oc{"upsample_bilinear2d",
                      str(shape_str(c.in), " scale ", h, " x ", w, align ? " align_corners" : ""), randn_inputs({c.in}),
                      [h, w, align](const auto& in) { return upsample_bilinear2d_scale(in[0], h, w, align); }};
            oc.parity_bound = upsample_bilinear2d_bound;
            add_case(oc);
        }

    // ---- batchnorm2d: training (the batch's statistics) and eval (running statistics) ----
    // NOTE on batchnorm2d's tolerances. In training the output of a channel does not change when its input is shifted
    // or scaled, so dx is a small difference of large terms (M * dy - sum(dy) - xhat * sum(dy * xhat)) and the loss is
    // curved through 1/sqrt(var): the finite differences are accurate only while the step is small next to the
    // channel's spread. The inputs have standard deviation 2 (variance 4, far from 0), so the default step 1e-2 is
    // 0.5% of the spread: the central-difference truncation error is ~(1e-2 / 2)^2 relative, and the float32 rounding
    // of L = sum w * y (~1e-6 for ~100 outputs) becomes ~1e-4 after dividing by 2 * step. tol = 2e-3 sits well above
    // both and far below any real mistake (a missing term of the dx formula is an O(1/M) ~ 1e-1 error). With only 3
    // values per channel the loss is so curved that the one-sided differences of a 1e-2 step disagree (the checker
    // would take such points for kinks), so the step is 2e-3: rounding then costs ~5e-4, still below tol.
    GradcheckOptions bn_grad;
    bn_grad.tol = 2e-3;
    bn_grad.eps = 2e-3;
    struct BnCase {
        Shape shape;
        bool affine, running;
    };
    for (BnCase c : {BnCase{{2, 3, 4, 5}, true, true}, BnCase{{1, 2, 3, 3}, true, false},
                     BnCase{{3, 2, 1, 1}, true, true}, BnCase{{2, 3, 3, 5}, false, false},
                     BnCase{{2, 3, 4, 3}, false, true}}) {
        int64_t C = c.shape[1];
        bool affine = c.affine, running = c.running;
        add_case({"batchnorm2d", str("train ", shape_str(c.shape), affine ? "" : " no affine",
                                     running ? "" : " no running statistics"),
                  [=](Generator& gen) {
                      std::vector<Tensor> xs{mul(randn(c.shape, gen), 2.f)};
                      if (affine) xs.push_back(rand_uniform({C}, 0.5f, 1.5f, gen)), xs.push_back(randn({C}, gen));
                      return xs;
                  },
                  [=](const auto& in) {
                      // running statistics are updated by every call but never read in training
                      Device d = in[0].device();
                      Tensor rm = running ? zeros({C}, DType::F32, d) : Tensor();
                      Tensor rv = running ? ones({C}, DType::F32, d) : Tensor();
                      return batchnorm2d(in[0], affine ? in[1] : Tensor(), affine ? in[2] : Tensor(), rm, rv, true,
                                         0.1f, 1e-5f);
                  },
                  bn_grad, true, 1e-4});
    }
    // batchnorm2d_relu: the fused BN + (residual) + ReLU. Its inputs are x, weight, bias and the residual; the ReLU's
    // kink at 0 is where the checker's kink window applies, and with std-2 inputs few values sit near it.
    for (BnCase c : {BnCase{{2, 3, 4, 5}, true, true}, BnCase{{3, 2, 1, 1}, true, false},
                     BnCase{{2, 3, 3, 5}, false, true}}) {
        int64_t C = c.shape[1];
        bool affine = c.affine, running = c.running;
        for (bool with_residual : {false, true}) {
            add_case({"batchnorm2d", str("relu train ", shape_str(c.shape), affine ? "" : " no affine",
                                         running ? "" : " no running statistics", with_residual ? " residual" : ""),
                      [=](Generator& gen) {
                          std::vector<Tensor> xs{mul(randn(c.shape, gen), 2.f)};
                          if (affine) xs.push_back(rand_uniform({C}, 0.5f, 1.5f, gen)), xs.push_back(randn({C}, gen));
                          if (with_residual) xs.push_back(randn(c.shape, gen));
                          return xs;
                      },
                      [=](const auto& in) {
                          Device d = in[0].device();
                          Tensor rm = running ? zeros({C}, DType::F32, d) : Tensor();
                          Tensor rv = running ? ones({C}, DType::F32, d) : Tensor();
                          Tensor r = with_residual ? in.back() : Tensor();
                          return batchnorm2d_relu(in[0], affine ? in[1] : Tensor(), affine ? in[2] : Tensor(), rm,
                                                  rv, true, 0.1f, 1e-5f, r);
                      },
                      bn_grad, true, 1e-4});
        }
    }
    for (bool with_residual : {false, true}) {
        Shape s{2, 3, 4, 5};
        int64_t C = s[1];
        add_case({"batchnorm2d", str("relu eval ", shape_str(s), with_residual ? " residual" : ""),
                  [=](Generator& gen) {
                      std::vector<Tensor> xs{randn(s, gen), rand_uniform({C}, 0.5f, 1.5f, gen), randn({C}, gen)};
                      if (with_residual) xs.push_back(randn(s, gen));
                      return xs;
                  },
                  [=](const auto& in) {
                      Device d = in[0].device();
                      Tensor rm = full({C}, 0.3f, DType::F32, d), rv = full({C}, 1.7f, DType::F32, d);
                      return batchnorm2d_relu(in[0], in[1], in[2], rm, rv, false, 0.1f, 1e-5f,
                                              with_residual ? in[3] : Tensor());
                  },
                  {}, true, 1e-5});
    }
    for (Shape s : {Shape{2, 3, 4, 5}, Shape{1, 5, 3, 1}}) {
        int64_t C = s[1];
        // eval BN is affine in x, weight and bias: the default gradcheck options hold
        add_case({"batchnorm2d", "eval " + shape_str(s),
                  [=](Generator& gen) {
                      return std::vector<Tensor>{randn(s, gen), rand_uniform({C}, 0.5f, 1.5f, gen), randn({C}, gen)};
                  },
                  [=](const auto& in) {
                      Device d = in[0].device();
                      Tensor rm = full({C}, 0.3f, DType::F32, d), rv = full({C}, 1.7f, DType::F32, d);
                      return batchnorm2d(in[0], in[1], in[2], rm, rv, false, 0.1f, 1e-5f);
                  },
                  {}, true, 1e-5});
    }

    // ---- dropout2d: the same generator seed on every call, so the mask is fixed ----
    for (Shape s : {Shape{2, 3, 4, 5}, Shape{1, 7, 3, 3}, Shape{3, 2, 1, 1}, Shape{2, 3, 5, 7}, Shape{1, 1, 1, 1},
                    Shape{3, 4, 33, 17}, Shape{2, 70, 1, 1}, Shape{1, 2, 40, 41}})
        for (float p : {0.1f, 0.5f, 0.7f, 1.0f})
            add_case({"dropout2d", str(shape_str(s), " p ", p), randn_inputs({s}), [p](const auto& in) {
                          Generator gen(11);
                          return dropout2d(in[0], p, true, gen);
                      }});

    // ---- cross_entropy ----
    // The gradients are (softmax - onehot) / count, small next to gradcheck's floor of 1 in the relative error,
    // so tol is tightened to 1e-3 to keep the check meaningful.
    GradcheckOptions ce_grad;
    ce_grad.tol = 1e-3;
    struct CeCase {
        Shape logits;
        int64_t ignore_every, ignore_index;
    };
    // 4-D and 2-D, ignored pixels, a custom ignore label, one class (every loss and gradient 0), more pixels than
    // the CUDA reduction block's 1024 threads, VOC's 21 classes, and logits scaled by 30
    for (CeCase c : {CeCase{{2, 3, 2, 3}, 0, 255}, CeCase{{1, 5, 3, 3}, 4, 255}, CeCase{{2, 2, 1, 5}, 3, 255},
                     CeCase{{5, 4}, 2, 255}, CeCase{{7, 3}, 3, -100}, CeCase{{2, 5, 7, 3}, 5, 255},
                     CeCase{{1, 21, 9, 11}, 5, 255}, CeCase{{3, 1, 4, 4}, 5, 255}, CeCase{{2, 4, 33, 40}, 5, 255},
                     CeCase{{17, 10}, 5, 255}, CeCase{{1, 3, 1, 1}, 0, 255}, CeCase{{2, 6, 5, 5}, 5, -1}}) {
        for (float scale : {1.0f, 30.0f}) {
            int64_t ignore_index = c.ignore_index;
            OpCase oc{"cross_entropy", str(shape_str(c.logits), " ignore every ", c.ignore_every, " scale ", scale),
                      logits_and_labels(c.logits, c.ignore_every, ignore_index, scale),
                      [ignore_index](const auto& in) { return cross_entropy(in[0], in[1], ignore_index); }, ce_grad};
            oc.parity_bound = cross_entropy_bound;
            add_case(oc);
        }
    }
    // 3200 pixels: several parallel chunks
    OpCase ce_threads{"cross_entropy", "threads", logits_and_labels({2, 3, 40, 40}, 5, 255),
                      [](const auto& in) { return cross_entropy(in[0], in[1]); }, {}, false};
    ce_threads.parity_bound = cross_entropy_bound;
    add_case(ce_threads);
    return cases;
}

inline const std::vector<OpCase>& op_cases() {
    static const std::vector<OpCase> cases = make_op_cases();
    return cases;
}

// The registered names that are not ops, each tested where it says: the coverage check skips exactly these.
inline bool is_not_an_op(const std::string& name) {
    return name == "sequential"         // the container layer (tests/test_module.cpp)
           || name == "copy_strided"    // the tensor primitives under every view and copy
           || name == "accumulate"      //   (tests/test_tensor.cpp, cuda/tests/test_backend.cpp)
           || name == "fill"            //
           || name == "count_nonfinite" // the non-finite scan (framework/finite.h; cuda/tests/test_finite.cpp)
           || name == "sgd_update"      // the optimizer's step (test_optimizer.cpp, cuda/tests/test_sgd_update.cpp)
           || name == "test_affine"     // tests/test_module.cpp's example layer
           || name == "twice";          // tests/test_dispatch.cpp's example kernel table
}

// The registered layers, and the kernels registered for `device`, that no entry covers (a kernel belongs to the
// op its name starts with: batchnorm2d_forward_train to batchnorm2d). Empty when every op is in the table.
inline std::vector<std::string> op_coverage_gaps(DeviceType device) {
    auto covered = [](const std::string& name, bool prefix) {
        for (const OpCase& c : op_cases())
            if (name == c.op || (prefix && name.rfind(c.op + "_", 0) == 0)) return true;
        return false;
    };
    // a plugin's ops are tested by the plugin's own tests (tests/test_plugins.cpp loads hard_swish into this program)
    auto from_plugin = [](const std::string& kind, const std::string& name) {
        return registration_owner(kind, name).rfind("plugin ", 0) == 0;
    };
    std::vector<std::string> gaps;
    if (device == DeviceType::CPU)
        for (const std::string& layer : layer_names())
            if (!is_not_an_op(layer) && !from_plugin("layer", layer) && !covered(layer, false))
                gaps.push_back("layer " + layer);
    for (const RegisteredKernel& k : registered_kernels())
        if (k.device == device && !is_not_an_op(k.name) &&
            !from_plugin("kernel", kernel_registration_name(k.name.c_str(), k.device)) && !covered(k.name, true))
            gaps.push_back("kernel " + k.name);
    return gaps;
}

}  // namespace strata::testing
