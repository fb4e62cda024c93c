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
// kernels parallelise over blocks of up to 64 consecutive pixels of one image and go through a block class by
// class: each pass reads a contiguous row of 64 logits, and the loops over the block's pixels vectorise. The forward writes each pixel's loss
// to a scratch buffer and then sums it in double in a fixed order, so the loss does not depend on the thread count.
#include "layers/cross_entropy.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<cross_entropy_forward_fn> cross_entropy_forward{"cross_entropy_forward"};
constinit KernelTable<cross_entropy_backward_fn> cross_entropy_backward{"cross_entropy_backward"};

namespace {

// exp(x) for the x <= 0 of a softmax (x - max) in plain arithmetic that the compiler vectorises (std::exp is a
// library call per element, which made this op ~6% of a psp18w32 training step). Cephes' expf: x = n*ln2 + r with
// |r| <= ln2/2 (ln2 in two parts, so that r keeps its precision), exp(r) = 1 + r + r^2 * P(r) with P of degree 5,
// and 2^n written into the exponent bits. Relative error below 2e-7, a couple of float ulps. Below -87 it returns
// exp(-87) ~ 1.6e-38 (a normal float; the true value is as negligible next to the max's exp(0) = 1); NaN stays NaN.
// Always inlined: as a call, GCC vectorises neither loop that uses it.
[[gnu::always_inline]] inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    // n = x / ln2 rounded to the nearest integer, by adding 1.5 * 2^23: the float sum keeps n in its low mantissa
    // bits, read back as an integer (std::floor and float-to-int conversions stop GCC vectorising the loop at -O2)
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23, whose bits are 0x4B400000
    const float shifted = x * 1.44269504088896341f + kRound;
    const float n = shifted - kRound;
    const int32_t n_bits = std::bit_cast<int32_t>(shifted) - 0x4B400000;  // n as an integer, -126 .. 0
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return p * std::bit_cast<float>((n_bits + 127) << 23);  // (NaN: any exponent; p is NaN already)
}

// The kernels go through the pixels in blocks of up to kBlock consecutive pixels of one image, class by class, so
// that each pass reads contiguous rows x[k*s + j], j < len, and vectorises across the pixels.
constexpr int64_t kBlock = 64;

// m[j] = max_k x[k*s + j] and sum[j] = sum_k exp(x[k*s + j] - m[j]) (in increasing k), for j < len.
void block_max_and_sum(float* m, float* sum, const float* x, int64_t c, int64_t s, int64_t len) {
    for (int64_t j = 0; j < len; ++j) m[j] = x[j];
    for (int64_t k = 1; k < c; ++k) {
        const float* row = x + k * s;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) m[j] = row[j] > m[j] ? row[j] : m[j];
    }
    for (int64_t j = 0; j < len; ++j) sum[j] = 0.0f;
    for (int64_t k = 0; k < c; ++k) {
        const float* row = x + k * s;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) sum[j] += exp_nonpositive(row[j] - m[j]);
    }
}

// The blocks of n images of s pixels: block b is pixels s0 .. s0+len of image b / per_image.
struct PixelBlock {
    int64_t image, s0, len;
};

PixelBlock pixel_block(int64_t b, int64_t s) {
    const int64_t per_image = (s + kBlock - 1) / kBlock, s0 = b % per_image * kBlock;
    return {b / per_image, s0, std::min(kBlock, s - s0)};
}

// logits, dlogits (n, c, s); target, pixel_loss (n, s); loss and count 1 element; bad 2 elements.
void cross_entropy_forward_cpu(float* loss, int64_t* count, int64_t* bad, float* pixel_loss, const float* logits,
                               const int32_t* target, int64_t n, int64_t c, int64_t s, int64_t ignore_index) {
    // 1. Each pixel's loss, in parallel; 0 for ignored pixels and for bad labels (found in step 2).
    const int64_t blocks = n * ((s + kBlock - 1) / kBlock);
    parallel_for(0, blocks, std::max<int64_t>(1, 8192 / (c * kBlock)), [&](int64_t lo, int64_t hi) {
        float m[kBlock], sum[kBlock];
        for (int64_t b = lo; b < hi; ++b) {
            const PixelBlock blk = pixel_block(b, s);
            const float* x = logits + blk.image * c * s + blk.s0;  // x[k * s + j]: class k of pixel s0 + j
            block_max_and_sum(m, sum, x, c, s, blk.len);
            for (int64_t j = 0; j < blk.len; ++j) {
                const int64_t p = blk.image * s + blk.s0 + j, label = target[p];
                const bool counted = label != ignore_index && label >= 0 && label < c;
                pixel_loss[p] = counted ? m[j] + std::log(sum[j]) - x[label * s + j] : 0.0f;
            }
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
    const float scale = dloss[0] * inv_count;
    const int64_t blocks = n * ((s + kBlock - 1) / kBlock);
    parallel_for(0, blocks, std::max<int64_t>(1, 8192 / (c * kBlock)), [&](int64_t lo, int64_t hi) {
        float m[kBlock], sum[kBlock], norm[kBlock];
        for (int64_t b = lo; b < hi; ++b) {
            const PixelBlock blk = pixel_block(b, s);
            const int64_t offset = blk.image * c * s + blk.s0;
            const float* x = logits + offset;
            float* dx = dlogits + offset;
            const int32_t* label = target + blk.image * s + blk.s0;
            block_max_and_sum(m, sum, x, c, s, blk.len);
            // softmax_k * scale = exp_k * norm; an ignored pixel gets norm = 0 and, below, exact zeros
            for (int64_t j = 0; j < blk.len; ++j) norm[j] = label[j] == ignore_index ? 0.0f : scale / sum[j];
            for (int64_t k = 0; k < c; ++k) {
                const float* row = x + k * s;
                float* drow = dx + k * s;
#pragma omp simd
                for (int64_t j = 0; j < blk.len; ++j)
                    drow[j] = norm[j] != 0.0f ? exp_nonpositive(row[j] - m[j]) * norm[j] : 0.0f;
            }
            for (int64_t j = 0; j < blk.len; ++j)
                if (label[j] != ignore_index) dx[label[j] * s + j] -= scale;
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
