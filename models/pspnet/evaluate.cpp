// Evaluation and prediction (see evaluate.h for semseg's protocol).
#include "models/pspnet/evaluate.h"

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/check.h"
#include "layers/add.h"
#include "layers/mul.h"
#include "layers/upsample_bilinear2d.h"

namespace strata::pspnet {

EvalOptions eval_options(const nlohmann::json& c) {
    EvalOptions o;
    o.mode = c["eval_mode"];
    STRATA_CHECK(o.mode == "whole" || o.mode == "slide", "config: eval_mode must be \"whole\" or \"slide\", got \"",
                 o.mode, "\"");
    o.crop_h = c["test_h"];
    o.crop_w = c["test_w"];
    o.base_size = c["base_size"];
    o.scales = c["scales"].get<std::vector<double>>();
    STRATA_CHECK(!o.scales.empty(), "config: scales must list at least one scale");
    for (double s : o.scales) STRATA_CHECK(s > 0, "config: scales must be > 0, got ", s);
    o.flip = c["eval_flip"];
    return o;
}

namespace {

// (3, h, w) normalised floats of an image in 0..255, plus its mirror image when flip is on, as a batch.
Tensor to_batch(const ImageF& image, const EvalOptions& o) {
    int64_t hw = int64_t(image.h) * image.w;
    std::vector<float> chw(size_t(3 * hw));
    normalize_to_chw(image, o.mean, o.std, chw.data());
    if (!o.flip) return from_vector(chw, {1, 3, image.h, image.w}, o.device);
    std::vector<float> both(chw);
    both.resize(size_t(6 * hw));
    for (int64_t ch = 0; ch < 3; ++ch)
        for (int y = 0; y < image.h; ++y)
            for (int x = 0; x < image.w; ++x)
                both[size_t((3 + ch) * hw + int64_t(y) * image.w + x)] =
                    chw[size_t(ch * hw + int64_t(y) * image.w + (image.w - 1 - x))];
    return from_vector(both, {2, 3, image.h, image.w}, o.device);
}

// semseg's net_process: forward (with the flipped copy), logits to the input size, softmax, flip average.
// Returns (C, h, w) probabilities on the CPU.
std::vector<float> net_process(PSPNet& model, const ImageF& image, const EvalOptions& o, int64_t& classes) {
    Tensor logits = model.forward(to_batch(image, o));
    if (logits.size(2) != image.h || logits.size(3) != image.w)
        logits = upsample_bilinear2d(logits, Size2(image.h, image.w), true);
    std::vector<float> v = logits.to_vector();
    classes = logits.size(1);
    int64_t hw = int64_t(image.h) * image.w, C = classes;
    std::vector<float> prob(size_t(C * hw));
    int64_t copies = o.flip ? 2 : 1;
    for (int64_t n = 0; n < copies; ++n) {
        const float* l = v.data() + n * C * hw;
        for (int y = 0; y < image.h; ++y)
            for (int x = 0; x < image.w; ++x) {
                int64_t p = int64_t(y) * image.w + x;
                int64_t q = int64_t(y) * image.w + (n == 1 ? image.w - 1 - x : x);  // un-mirror the flipped copy
                float m = l[p];
                for (int64_t c = 1; c < C; ++c) m = std::max(m, l[c * hw + p]);
                double z = 0;
                for (int64_t c = 0; c < C; ++c) z += std::exp(double(l[c * hw + p] - m));
                for (int64_t c = 0; c < C; ++c)
                    prob[size_t(c * hw + q)] += float(std::exp(double(l[c * hw + p] - m)) / z / double(copies));
            }
    }
    return prob;
}

// Bilinear resize of a float HWC image in 0..255 (pixel centres aligned).
ImageF resized(const ImageF& image, int h, int w) {
    if (image.h == h && image.w == w) return image;
    return resize_bilinear(image, h, w);
}

// semseg's scale_process: pad to the crop, slide windows with stride ceil(2/3 crop), average overlapping windows.
std::vector<float> slide(PSPNet& model, const ImageF& image, const EvalOptions& o, int64_t& classes) {
    int ch = o.crop_h, cw = o.crop_w;
    int pad_h = std::max(ch - image.h, 0), pad_w = std::max(cw - image.w, 0);
    int top = pad_h / 2, left = pad_w / 2;
    ImageF padded(image.h + pad_h, image.w + pad_w, 3);
    for (int y = 0; y < padded.h; ++y)
        for (int x = 0; x < padded.w; ++x) {
            float* px = padded.pixel(y, x);
            int sy = y - top, sx = x - left;
            bool inside = sy >= 0 && sy < image.h && sx >= 0 && sx < image.w;
            for (int k = 0; k < 3; ++k) px[k] = inside ? image.pixel(sy, sx)[k] : 255.0f * o.mean[size_t(k)];
        }
    int H = padded.h, W = padded.w;
    int stride_h = int(std::ceil(ch * 2.0 / 3.0)), stride_w = int(std::ceil(cw * 2.0 / 3.0));
    int grid_h = int(std::ceil(double(H - ch) / stride_h)) + 1, grid_w = int(std::ceil(double(W - cw) / stride_w)) + 1;
    std::vector<float> sum, count(size_t(H) * W, 0.0f);
    int64_t C = 0;
    for (int gy = 0; gy < grid_h; ++gy)
        for (int gx = 0; gx < grid_w; ++gx) {
            int y0 = std::max(std::min(gy * stride_h + ch, H) - ch, 0);
            int x0 = std::max(std::min(gx * stride_w + cw, W) - cw, 0);
            ImageF window(ch, cw, 3);
            for (int y = 0; y < ch; ++y)
                std::copy(padded.pixel(y0 + y, x0), padded.pixel(y0 + y, x0) + 3 * cw, window.pixel(y, 0));
            std::vector<float> p = net_process(model, window, o, C);
            if (sum.empty()) sum.assign(size_t(C) * H * W, 0.0f);
            for (int64_t c = 0; c < C; ++c)
                for (int y = 0; y < ch; ++y)
                    for (int x = 0; x < cw; ++x)
                        sum[size_t((c * H + y0 + y) * W + x0 + x)] += p[size_t((c * ch + y) * cw + x)];
            for (int y = 0; y < ch; ++y)
                for (int x = 0; x < cw; ++x) count[size_t(y0 + y) * W + x0 + x] += 1.0f;
        }
    classes = C;
    std::vector<float> out(size_t(C) * image.h * image.w);
    for (int64_t c = 0; c < C; ++c)
        for (int y = 0; y < image.h; ++y)
            for (int x = 0; x < image.w; ++x) {
                size_t at = size_t(y + top) * W + size_t(x + left);
                out[size_t((c * image.h + y) * image.w + x)] = sum[size_t(c) * H * W + at] / count[at];
            }
    return out;
}

}  // namespace

Tensor predict_probabilities(PSPNet& model, const Image& image_in, const EvalOptions& o) {
    NoGradGuard no_grad;
    ImageF image = to_float(image_in);
    int h = image.h, w = image.w;
    Tensor total;
    for (double s : o.scales) {
        int new_h, new_w;
        if (o.mode == "slide" && o.base_size > 0) {
            // long side -> base_size * s, the other side in proportion (semseg's test.py)
            int long_side = int(std::lround(s * o.base_size));
            new_h = h > w ? long_side : int(std::lround(double(long_side) / w * h));
            new_w = h > w ? int(std::lround(double(long_side) / h * w)) : long_side;
        } else {
            new_h = int(std::lround(s * h));
            new_w = int(std::lround(s * w));
        }
        ImageF scaled = resized(image, std::max(new_h, 1), std::max(new_w, 1));
        int64_t C = 0;
        std::vector<float> p = o.mode == "slide" ? slide(model, scaled, o, C) : net_process(model, scaled, o, C);
        Tensor prob = from_vector(p, {1, C, scaled.h, scaled.w});
        if (scaled.h != h || scaled.w != w) prob = upsample_bilinear2d(prob, Size2(h, w), false);
        total = total.defined() ? total + prob : prob;
    }
    return (total * float(1.0 / double(o.scales.size()))).reshape({total.size(1), h, w});
}

LabelMap argmax_labels(const Tensor& probabilities) {
    int64_t C = probabilities.size(0), h = probabilities.size(1), w = probabilities.size(2);
    std::vector<float> p = probabilities.to_vector();
    LabelMap out(static_cast<int>(h), static_cast<int>(w));
    for (int64_t i = 0; i < h * w; ++i) {
        int32_t best = 0;
        for (int64_t c = 1; c < C; ++c)
            if (p[size_t(c * h * w + i)] > p[size_t(best * h * w + i)]) best = int32_t(c);
        out.data[size_t(i)] = best;
    }
    return out;
}

SegmentationMetrics evaluate_dataset(PSPNet& model, const Dataset& dataset, const EvalOptions& options,
                                     int64_t max_images, int ignore_label,
                                     const std::function<void(int64_t, const Sample&, const LabelMap&)>& on_prediction,
                                     const std::function<void(int64_t, int64_t)>& progress) {
    STRATA_CHECK(dataset.has_labels(), "evaluate: ", dataset.description(), " has no labels to evaluate against");
    bool was_training = model.is_training();
    model.eval();
    SegmentationMetrics metrics(model.config().classes, ignore_label);
    int64_t n = max_images > 0 ? std::min(max_images, dataset.size()) : dataset.size();
    for (int64_t i = 0; i < n; ++i) {
        Sample s = dataset.get(i);
        LabelMap pred = argmax_labels(predict_probabilities(model, s.image, options));
        metrics.add(pred.data.data(), s.label.data.data(), int64_t(pred.data.size()));
        if (on_prediction) on_prediction(i, s, pred);
        if (progress) progress(i + 1, n);
    }
    model.train(was_training);
    return metrics;
}

namespace {
Rgb color_of(int32_t label, const std::vector<Rgb>& palette) {
    if (label >= 0 && size_t(label) < palette.size() && label != 255) return palette[size_t(label)];
    return Rgb{255, 255, 255};
}
}  // namespace

Image prediction_panel(const Image& image, const LabelMap& label, const LabelMap& pred,
                       const std::vector<Rgb>& palette) {
    int h = image.h, w = image.w, gap = 4;
    Image out(h, 3 * w + 2 * gap, 3);
    std::fill(out.data.begin(), out.data.end(), uint8_t(255));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const uint8_t* px = image.pixel(y, x);
            std::copy(px, px + 3, out.pixel(y, x));
            Rgb a = color_of(label.h ? label.at(y, x) : 255, palette), b = color_of(pred.at(y, x), palette);
            std::copy(a.begin(), a.end(), out.pixel(y, w + gap + x));
            std::copy(b.begin(), b.end(), out.pixel(y, 2 * (w + gap) + x));
        }
    return out;
}

Image prediction_overlay(const Image& image, const LabelMap& pred, const std::vector<Rgb>& palette, float alpha) {
    Image out(image.h, image.w, 3);
    for (int y = 0; y < image.h; ++y)
        for (int x = 0; x < image.w; ++x) {
            Rgb c = color_of(pred.at(y, x), palette);
            for (int k = 0; k < 3; ++k)
                out.pixel(y, x)[k] = uint8_t(std::lround((1 - alpha) * image.pixel(y, x)[k] + alpha * c[size_t(k)]));
        }
    return out;
}

}  // namespace strata::pspnet
