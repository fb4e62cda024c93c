// cross_entropy: softmax cross entropy per pixel, averaged over the labelled pixels.
//
// logits x are (N, C, S) with S = H * W pixels per image (S = 1 for the (N, C) form); target t is (N, S). A pixel
// is labelled when t != ignore_index (255 in PSPNet: object boundaries in VOC, "void" in Cityscapes, padding added
// by the crop). For a labelled pixel with label k:
//
//   forward:   l = -log softmax(x)_k = logsumexp_c(x_c) - x_k,    logsumexp_c(x_c) = m + log sum_c exp(x_c - m)
//              loss = (sum of l over labelled pixels) / count,    count = number of labelled pixels
//   backward:  dx_c = (softmax(x)_c - [c == k]) * dloss / count   for a labelled pixel; dx = 0 for an ignored one
//
// m = max_c x_c keeps exp() in [0, 1]: logits of 1e4 would otherwise overflow to inf (a stable log-sum-exp).
//
// NOTE: if no pixel is labelled (count = 0) the loss is 0 and the gradient 0. PyTorch returns 0/0 = NaN there,
// which would poison the weights through the optimizer; a crop that happens to be all "ignore" (a padded border,
// an unlabelled region) should simply contribute nothing to the step.
//
// NOTE: a label outside [0, C) that is not ignore_index (Cityscapes labelIds instead of labelTrainIds, ADE20K
// labels without the minus-one shift) must not index past the logits.
// The forward kernel reports the first such label through its `bad` output (so a CUDA twin can do the same with
// an atomicMin); the op copies it back and throws an Error naming the value and its (n, h, w).
//
// NOTE: in memory x[n, c, s] is at (n * C + c) * S + s, so the C logits of one pixel are S floats apart. The
// kernels parallelise over the N * S pixels in contiguous runs: neighbouring pixels read neighbouring addresses for
// each class, so the cache lines fetched for one pixel serve the next ones. The forward writes each pixel's loss
// to a scratch buffer and then sums it in double in a fixed order, so the loss does not depend on the thread count.
#include "layers/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<cross_entropy_forward_fn> cross_entropy_forward{"cross_entropy_forward"};
constinit KernelTable<cross_entropy_backward_fn> cross_entropy_backward{"cross_entropy_backward"};

namespace {

// logits, dlogits (n, c, s); target, pixel_loss (n, s); loss and count 1 element; bad 2 elements.
void cross_entropy_forward_cpu(float* loss, int64_t* count, int64_t* bad, float* pixel_loss, const float* logits,
                               const int32_t* target, int64_t n, int64_t c, int64_t s, int64_t ignore_index) {
    // 1. Each pixel's loss, in parallel; 0 for ignored pixels and for bad labels (found in step 2).
    parallel_for(0, n * s, std::max<int64_t>(1, 8192 / c), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) {
            int64_t label = target[p];
            if (label == ignore_index || label < 0 || label >= c) {
                pixel_loss[p] = 0.0f;
                continue;
            }
            const float* x = logits + (p / s) * c * s + p % s;  // x[k * s] is class k of this pixel
            float m = x[0];
            for (int64_t k = 1; k < c; ++k) m = std::max(m, x[k * s]);
            float sum = 0.0f;
            for (int64_t k = 0; k < c; ++k) sum += std::exp(x[k * s] - m);
            pixel_loss[p] = m + std::log(sum) - x[label * s];
        }
    });
    // 2. The mean, the count and the first bad label, in one serial pass in a fixed order.
    double total = 0.0;
    int64_t labelled = 0;
    bad[0] = -1;
    bad[1] = 0;
    for (int64_t p = 0; p < n * s; ++p) {
        int64_t label = target[p];
        if (label == ignore_index) continue;
        if (label < 0 || label >= c) {
            if (bad[0] < 0) {
                bad[0] = p;
                bad[1] = label;
            }
            continue;
        }
        total += pixel_loss[p];
        ++labelled;
    }
    count[0] = labelled;
    loss[0] = labelled > 0 ? float(total / double(labelled)) : 0.0f;
}

// dlogits (n, c, s) from logits (n, c, s), target (n, s) and dloss (1 element); inv_count = 1 / count (0 if 0).
void cross_entropy_backward_cpu(float* dlogits, const float* dloss, const float* logits, const int32_t* target,
                                float inv_count, int64_t n, int64_t c, int64_t s, int64_t ignore_index) {
    float scale = dloss[0] * inv_count;
    parallel_for(0, n * s, std::max<int64_t>(1, 8192 / c), [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) {
            int64_t offset = (p / s) * c * s + p % s;
            const float* x = logits + offset;
            float* dx = dlogits + offset;
            int64_t label = target[p];
            if (label == ignore_index) {
                for (int64_t k = 0; k < c; ++k) dx[k * s] = 0.0f;
                continue;
            }
            float m = x[0];
            for (int64_t k = 1; k < c; ++k) m = std::max(m, x[k * s]);
            float sum = 0.0f;
            for (int64_t k = 0; k < c; ++k) {
                dx[k * s] = std::exp(x[k * s] - m);
                sum += dx[k * s];
            }
            float norm = scale / sum;  // softmax_k * scale = exp_k * norm
            for (int64_t k = 0; k < c; ++k) dx[k * s] *= norm;
            dx[label * s] -= scale;
        }
    });
}

}  // namespace

REGISTER_KERNEL(cross_entropy_forward, DeviceType::CPU, cross_entropy_forward_cpu);
REGISTER_KERNEL(cross_entropy_backward, DeviceType::CPU, cross_entropy_backward_cpu);

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target_in, int64_t ignore_index) {
    check_dtype(logits_in, DType::F32, "cross_entropy", "logits");
    STRATA_CHECK(target_in.defined(), "cross_entropy: target is an undefined tensor");
    STRATA_CHECK(target_in.dtype() == DType::I32, "cross_entropy: target must be I32 class indices, got ",
                 dtype_name(target_in.dtype()));
    int64_t ndim = logits_in.dim();
    STRATA_CHECK(ndim == 4 || ndim == 2, "cross_entropy: logits must be 4-D (N,C,H,W) or 2-D (N,C), got shape ",
                 logits_in.shape_string());
    Shape expected = ndim == 4 ? Shape{logits_in.size(0), logits_in.size(2), logits_in.size(3)}
                               : Shape{logits_in.size(0)};
    STRATA_CHECK(target_in.shape() == expected, "cross_entropy: target must have shape ", shape_str(expected),
                 ndim == 4 ? " (N,H,W)" : " (N)", " for logits of shape ", logits_in.shape_string(), ", got ",
                 target_in.shape_string());
    STRATA_CHECK(logits_in.size(1) > 0, "cross_entropy: logits must have at least one class, got shape ",
                 logits_in.shape_string());
    check_same_device(logits_in, target_in, "cross_entropy");

    Tensor logits = logits_in.contiguous();
    Tensor target = target_in.contiguous();
    int64_t n = logits.size(0), c = logits.size(1);
    int64_t s = ndim == 4 ? logits.size(2) * logits.size(3) : 1;
    Device device = logits.device();

    Tensor loss = empty({}, DType::F32, device);
    Tensor stats = empty({3}, DType::I64, device);  // count, bad pixel index, bad label
    Tensor pixel_loss = empty({n * s}, DType::F32, device);
    cross_entropy_forward[device](loss.f32(), stats.i64(), stats.i64() + 1, pixel_loss.f32(), logits.f32(),
                                  target.i32(), n, c, s, ignore_index);

    std::vector<int64_t> host = stats.to_vector_i64();
    int64_t count = host[0], bad_index = host[1], bad_label = host[2];
    if (bad_index >= 0) {
        std::string where = ndim == 4 ? str("(n=", bad_index / s, ", h=", bad_index % s / logits.size(3),
                                            ", w=", bad_index % logits.size(3), ")")
                                      : str("(n=", bad_index, ")");
        STRATA_FAIL("cross_entropy: target has label ", bad_label, " at ", where, ", which is neither a class in [0, ",
                    c, ") nor the ignore label ", ignore_index, ". Labels must be class indices in [0, ", c, ") or ",
                    ignore_index, " (ignore); for Cityscapes use the labelTrainIds images, not labelIds; ADE20K "
                    "labels need the minus-one shift (0 = other becomes 255)");
    }

    if (any_requires_grad({logits})) {
        Tensor saved = logits.detach();
        float inv_count = count > 0 ? 1.0f / float(count) : 0.0f;
        record(loss, "cross_entropy", {logits},
               [saved, target, inv_count, n, c, s, ignore_index](const Tensor& dloss_in, const std::vector<bool>&) {
                   Tensor dloss = dloss_in.contiguous();
                   Tensor dlogits = empty_like(saved);
                   cross_entropy_backward[saved.device()](dlogits.f32(), dloss.f32(), saved.f32(), target.i32(),
                                                          inv_count, n, c, s, ignore_index);
                   return std::vector<Tensor>{dlogits};
               });
    }
    return loss;
}

}  // namespace strata
