// linear: y = x · weightᵀ + bias over the last dimension (a fully connected layer).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/tensor.h"

namespace strata {

// x: (..., in_features), weight: (out_features, in_features), bias: (out_features) or undefined (no bias).
// Returns (..., out_features).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// The Linear module (registry name "linear"; attributes in_features, out_features, bias = true). Parameters
// "weight" (out, in) and "bias" (out), both initialised U(-1/sqrt(in), 1/sqrt(in)) as in PyTorch.
class Linear : public Module {
public:
    Linear(int64_t in_features, int64_t out_features, bool bias = true);
    Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
    std::string type_name() const override { return "Linear"; }

    int64_t in_features, out_features;
    Tensor weight;
    Tensor bias;  // undefined when built with bias = false
};

// Kernels on x flattened to (rows, in). bias may be null (no bias).
//   forward:          y[rows, out]       = x[rows, in] · weight[out, in]ᵀ + bias[out]
//   backward_input:   dx[rows, in]       = dy[rows, out] · weight[out, in]
//   backward_weight:  dweight[out, in]   = dy[rows, out]ᵀ · x[rows, in]
// (the bias gradient, dbias = sum of dy over the rows, is sum's kernel.)
using linear_forward_fn = void (*)(float* y, const float* x, const float* weight, const float* bias, int64_t rows,
                                   int64_t in, int64_t out);
using linear_backward_input_fn = void (*)(float* dx, const float* dy, const float* weight, int64_t rows, int64_t in,
                                          int64_t out);
using linear_backward_weight_fn = void (*)(float* dweight, const float* dy, const float* x, int64_t rows, int64_t in,
                                           int64_t out);
extern KernelTable<linear_forward_fn> linear_forward;
extern KernelTable<linear_backward_input_fn> linear_backward_input;
extern KernelTable<linear_backward_weight_fn> linear_backward_weight;

}  // namespace strata
