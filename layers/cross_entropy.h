// cross_entropy: mean softmax cross entropy over labelled pixels, ignoring one label (PSPNet's loss).
#pragma once

#include <cstdint>

#include "framework/dispatch.h"
#include "framework/tensor.h"

namespace strata {

// logits (N, C, H, W) F32 with target (N, H, W) I32, or logits (N, C) with target (N). Returns a 0-D tensor: the
// mean over the pixels whose label is not ignore_index (PyTorch's F.cross_entropy(reduction='mean',
// ignore_index=...), without class weights). 0 if no pixel is labelled. A label outside [0, C) that is not
// ignore_index is an Error naming the value and its position.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = 255);

// Kernels. logits and dlogits are (n, c, s) with s = H * W (s = 1 for the (N, C) form); target and pixel_loss are
// (n, s). loss is 1 element: the mean over the `count` labelled pixels (0 if none). bad[0] is the flat index
// (into target) of the first label outside [0, c) that is not ignore_index, or -1 if there is none, and bad[1] is
// that label. pixel_loss is scratch the op allocates. dloss is the 1-element gradient of the loss.
using cross_entropy_forward_fn = void (*)(float* loss, int64_t* count, int64_t* bad, float* pixel_loss,
                                          const float* logits, const int32_t* target, int64_t n, int64_t c, int64_t s,
                                          int64_t ignore_index);
using cross_entropy_backward_fn = void (*)(float* dlogits, const float* dloss, const float* logits,
                                           const int32_t* target, float inv_count, int64_t n, int64_t c, int64_t s,
                                           int64_t ignore_index);
extern KernelTable<cross_entropy_forward_fn> cross_entropy_forward;
extern KernelTable<cross_entropy_backward_fn> cross_entropy_backward;

}  // namespace strata
