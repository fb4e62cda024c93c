// Evaluation and prediction (see evaluate.h for semseg's protocol and how the labels avoid full-size scores).
#include "models/pspnet/evaluate.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <new>
#include <sstream>

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/parallel.h"
#include "layers/add.h"
#include "layers/mul.h"
#include "layers/upsample_bilinear2d.h"

namespace strata::pspnet {

void check_eval_options(const EvalOptions& o, int64_t output_stride) {
    STRATA_CHECK(o.mode == "whole" || o.mode == "slide", "evaluate: eval_mode must be \"whole\" or \"slide\", got \"",
                 o.mode, "\"");
    STRATA_CHECK(!o.scales.empty(), "evaluate: scales must list at least one scale, e.g. scales=[1.0]");
    for (double s : o.scales)
        STRATA_CHECK(std::isfinite(s) && s > 0, "evaluate: every scale must be a number > 0, got ", s, " in scales");
    STRATA_CHECK(o.memory_limit_bytes >= 0, "evaluate: memory_limit_bytes must be >= 0 (0 = the memory available), ",
                 "got ", o.memory_limit_bytes);
    if (o.mode != "slide") return;
    // A window of fewer than 2 * output_stride + 1 pixels gives the network a feature map under 3 x 3, where every
    // 3 x 3 convolution sees more zero padding than image: the scores mean nothing (test_h=0 reported mIoU 0.0145
    // instead of an error).
    int64_t min_size = 2 * output_stride + 1;
    STRATA_CHECK(o.crop_h >= min_size && o.crop_w >= min_size, "evaluate: slide mode needs crops (test_h x test_w) ",
                 "of at least ", min_size, " x ", min_size, " pixels at output stride ", output_stride, ", got test_h=",
                 o.crop_h, " test_w=", o.crop_w, " (semseg uses 473 x 473, or 713 x 713 for Cityscapes)");
    STRATA_CHECK(o.base_size == 0 || o.base_size >= min_size, "evaluate: base_size must be 0 (keep each image's size) ",
                 "or at least ", min_size, " pixels (the long side of the image at scale 1 in slide mode), got ",
                 "base_size=", o.base_size, " (semseg uses 512, or 2048 for Cityscapes)");
}

Size2 processing_size(int h, int w, const EvalOptions& o, double s) {
    int64_t new_h, new_w;
    if (o.mode == "slide" && o.base_size > 0) {
        // long side -> base_size * s, the other side in proportion (semseg's test.py)
        int64_t long_side = std::lround(s * o.base_size);
        new_h = h > w ? long_side : std::lround(double(long_side) / w * h);
        new_w = h > w ? std::lround(double(long_side) / h * w) : long_side;
    } else {
        new_h = std::lround(s * h);
        new_w = std::lround(s * w);
    }
    return Size2(std::max<int64_t>(new_h, 1), std::max<int64_t>(new_w, 1));
}

int64_t estimate_forward_bytes(const PSPNet& model, int64_t batch, int64_t h, int64_t w) {
    const PSPNetConfig& c = model.config();
    double pixels = double(h) * double(w), os = double(c.backbone.output_stride);
    // Floats per image of the widest convolution: every conv weight (K, C, R, S) runs at the resolution of its
    // stage (the stem at 1/2, layer1 at 1/4, layer2 at 1/8, the rest at 1/output_stride), where it holds its im2col
    // columns (C*R*S per output pixel, none for a 1x1), its input, the block input kept for the residual (at most
    // as wide as the input) and its output. The auxiliary head does not run in eval mode.
    double widest = 0;
    for (const auto& [name, weight] : model.named_parameters()) {
        if (weight.dim() != 4) continue;
        std::string stage = name.substr(0, name.find('.'));
        if (stage == "aux") continue;
        double stride = stage == "layer0" ? 2 : stage == "layer1" ? 4 : stage == "layer2" ? 8 : os;
        double K = double(weight.size(0)), C = double(weight.size(1)), taps = double(weight.size(2) * weight.size(3));
        double floats = (taps > 1 ? C * taps : 0) + 2 * C + K;
        widest = std::max(widest, floats * pixels / (stride * stride));
    }
    // The normalised input (a host vector and the tensor), the logits at the input size and their host copy, and
    // the probabilities (one map, the flipped copy averaged into it).
    double classes = double(c.classes);
    double floats = double(batch) * (widest + 6 * pixels + 2 * classes * pixels) + classes * pixels;
    return int64_t(std::min(4 * floats, 9e18));
}

namespace {

// What one forward pass holds in host memory: all of it on the CPU; on a GPU only the normalised input, the host
// copy of the logits and the probabilities (the device's own memory is the device's: when it runs out, the CUDA
// allocator's "out of CUDA memory" is rethrown by predict_labels_of with the image and the fix).
double forward_host_bytes(const PSPNet& model, int64_t batch, int64_t h, int64_t w, const EvalOptions& o) {
    if (o.device.is_cpu()) return double(estimate_forward_bytes(model, batch, h, w));
    double pixels = double(h) * double(w), classes = double(model.config().classes);
    return 4 * (double(batch) * (3 + classes) * pixels + classes * pixels);
}

}  // namespace

int64_t estimate_prediction_bytes(const PSPNet& model, int h, int w, const EvalOptions& o) {
    double classes = double(model.config().classes), maps = 0, largest_step = 0;
    int64_t batch = o.flip ? 2 : 1;
    for (double s : o.scales) {
        Size2 p = processing_size(h, w, o, s);
        double scaled = double(p.h) * double(p.w);
        double step = 12 * scaled;  // the resized float image
        if (o.mode == "slide") {
            double padded = double(std::max<int64_t>(p.h, o.crop_h)) * double(std::max<int64_t>(p.w, o.crop_w));
            // the padded image (3 floats), the window sums (classes) and counts (1) per padded pixel
            step += 4 * padded * (3 + classes + 1) + forward_host_bytes(model, batch, o.crop_h, o.crop_w, o);
        } else {
            step += forward_host_bytes(model, batch, p.h, p.w, o);
        }
        largest_step = std::max(largest_step, step);
        maps += 4 * classes * scaled;
    }
    double labels = 4.0 * double(h) * double(w);
    return int64_t(std::min(maps + largest_step + labels, 9e18));
}

int64_t available_memory_bytes() {
    // The kernel's estimate of what can be allocated without swapping (free memory plus reclaimable caches).
    int64_t available = 0;
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    long long kib = 0;
    while (meminfo >> key >> kib) {
        if (key == "MemAvailable:") available = int64_t(kib) * 1024;
        meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    if (available == 0) {
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
        if (pages > 0 && page > 0) available = int64_t(pages) * int64_t(page);
    }
    // A container's limit (cgroup v2) less what the container already uses; "max" reads as no limit.
    std::ifstream max_file("/sys/fs/cgroup/memory.max"), current_file("/sys/fs/cgroup/memory.current");
    long long limit = 0, current = 0;
    if (max_file >> limit && current_file >> current && limit > current) {
        int64_t room = int64_t(limit - current);
        if (available == 0 || room < available) available = room;
    }
    return available;
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
    std::vector<float> v;
    {
        Tensor logits = model.forward(to_batch(image, o));
        if (logits.size(2) != image.h || logits.size(3) != image.w)
            logits = upsample_bilinear2d(logits, Size2(image.h, image.w), true);
        classes = logits.size(1);
        v = logits.to_vector();
    }  // the logits tensor is given back before the probabilities are allocated
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
    // Divide by the window counts and drop the padding in place: element (c, y, x) of the (C, h, w) result comes
    // from (c, y + top, x + left) of the padded (C, H, W) sums, an index never below its own (h <= H, w <= W), so
    // walking the result in order overwrites only sums already read.
    for (int64_t c = 0; c < C; ++c)
        for (int y = 0; y < image.h; ++y)
            for (int x = 0; x < image.w; ++x) {
                size_t at = size_t(y + top) * W + size_t(x + left);
                sum[size_t((c * image.h + y) * image.w + x)] = sum[size_t(c) * H * W + at] / count[at];
            }
    sum.resize(size_t(C) * image.h * image.w);
    return sum;
}

// The two source neighbours of one output index along one axis and their weights, computed exactly as
// upsample_bilinear2d's CPU kernel does for align_corners = false (layers/upsample_bilinear2d.cpp), so that
// labels_from_scores reproduces its floats bit for bit.
struct LinearTap {
    int64_t i0, i1;
    float w0, w1;
};

LinearTap linear_tap(int64_t o, float scale, int64_t in_size) {
    float src = std::max(scale * (float(o) + 0.5f) - 0.5f, 0.0f);
    LinearTap t;
    t.i0 = std::min(int64_t(src), in_size - 1);
    t.i1 = t.i0 < in_size - 1 ? t.i0 + 1 : t.i0;
    t.w1 = std::clamp(src - float(t.i0), 0.0f, 1.0f);
    t.w0 = 1.0f - t.w1;
    return t;
}

// upsample_bilinear2d's coordinate scale for a size given (no scale factor): in / out, 1 for an unchanged axis.
float coordinate_scale(int64_t in, int64_t out) { return in == out ? 1.0f : float(in) / float(out); }

}  // namespace

ScoreMap predict_scale(PSPNet& model, const Image& image, const EvalOptions& o, double s) {
    NoGradGuard no_grad;
    Size2 size = processing_size(image.h, image.w, o, s);
    // Resized straight from the 8-bit image: no full-size float copy unless the image is used at its own size.
    ImageF scaled = size.h == image.h && size.w == image.w ? to_float(image)
                                                           : resize_bilinear(image, int(size.h), int(size.w));
    ScoreMap m;
    m.h = scaled.h;
    m.w = scaled.w;
    m.data = o.mode == "slide" ? slide(model, scaled, o, m.classes) : net_process(model, scaled, o, m.classes);
    return m;
}

LabelMap labels_from_scores(const std::vector<ScoreMap>& scores, int h, int w, int band_rows) {
    STRATA_CHECK(!scores.empty(), "labels_from_scores: no score maps");
    STRATA_CHECK(h > 0 && w > 0, "labels_from_scores: the output size must be positive, got ", h, "x", w);
    int64_t C = scores[0].classes;
    for (const ScoreMap& m : scores)
        STRATA_CHECK(m.classes == C && C > 0 && m.h > 0 && m.w > 0 && int64_t(m.data.size()) == C * m.h * m.w,
                     "labels_from_scores: score maps must all be (", C, ", h, w) with their data, got (", m.classes,
                     ", ", m.h, ", ", m.w, ") holding ", m.data.size(), " floats");
    size_t n = scores.size();
    // Per map: the column taps (the same for every output row) and the row scale.
    std::vector<std::vector<LinearTap>> column_taps(n);
    std::vector<float> row_scale(n);
    for (size_t i = 0; i < n; ++i) {
        float rw = coordinate_scale(scores[i].w, w);
        row_scale[i] = coordinate_scale(scores[i].h, h);
        for (int x = 0; x < w; ++x) column_taps[i].push_back(linear_tap(x, rw, scores[i].w));
    }
    // The full-size path computes total = p_0 + p_1 + ... (each resized to h x w) and then total * (1 / n): the same
    // float operations in the same order are done here per pixel.
    float inverse = float(1.0 / double(n));
    if (band_rows <= 0) band_rows = int(std::clamp<int64_t>((int64_t(1) << 23) / (2 * C * w), 1, h));
    int64_t band_floats = C * int64_t(std::min(band_rows, h)) * w;
    // (band row, class, x): the band's running sum over the maps, and one map's resized rows
    std::vector<float> total(static_cast<size_t>(band_floats)), resized(static_cast<size_t>(band_floats));
    LabelMap out(h, w);
    for (int band = 0; band < h; band += band_rows) {
        int rows = std::min(band_rows, h - band);
        int64_t grain = std::max<int64_t>(1, 16384 / (C * w));
        parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
            for (int64_t r = lo; r < hi; ++r) {
                int64_t y = band + r;
                float* acc = total.data() + r * C * w;
                float* row = resized.data() + r * C * w;
                for (size_t i = 0; i < n; ++i) {
                    const ScoreMap& m = scores[i];
                    float* dst = i == 0 ? acc : row;
                    if (m.h == h && m.w == w) {  // the full-size path does not resize a map of the output size
                        for (int64_t c = 0; c < C; ++c)
                            std::copy_n(m.data.data() + (c * h + y) * w, w, dst + c * w);
                    } else {
                        LinearTap th = linear_tap(y, row_scale[i], m.h);
                        for (int64_t c = 0; c < C; ++c) {
                            const float* x0 = m.data.data() + (c * m.h + th.i0) * m.w;  // the two source rows
                            const float* x1 = m.data.data() + (c * m.h + th.i1) * m.w;
                            for (int x = 0; x < w; ++x) {
                                const LinearTap& tw = column_taps[i][size_t(x)];
                                dst[c * w + x] = th.w0 * (tw.w0 * x0[tw.i0] + tw.w1 * x0[tw.i1]) +
                                                 th.w1 * (tw.w0 * x1[tw.i0] + tw.w1 * x1[tw.i1]);
                            }
                        }
                    }
                    if (i > 0)
                        for (int64_t k = 0; k < C * w; ++k) acc[k] = acc[k] + row[k];
                }
                for (int64_t k = 0; k < C * w; ++k) acc[k] = acc[k] * inverse;
                int32_t* labels = out.data.data() + y * w;
                for (int x = 0; x < w; ++x) {
                    int32_t best = 0;
                    for (int64_t c = 1; c < C; ++c)
                        if (acc[c * w + x] > acc[best * w + x]) best = int32_t(c);
                    labels[x] = best;
                }
            }
        });
    }
    return out;
}

namespace {

std::string gib(double bytes) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(1) << bytes / double(int64_t(1) << 30) << " GiB";
    return s.str();
}

// What to change when an image's prediction does not fit.
std::string memory_advice(const EvalOptions& o) {
    if (o.mode == "whole")
        return "use eval_mode=slide (the image resized so that its long side is base_size, then test_h x test_w "
               "windows), or smaller scales";
    if (o.base_size == 0)
        return "set base_size (e.g. base_size=512: the long side the image is resized to; 0 keeps its full size), "
               "or use smaller scales";
    return str("use a smaller base_size (now ", o.base_size, "), smaller scales, or smaller test_h/test_w");
}

}  // namespace

LabelMap predict_labels(PSPNet& model, const Image& image, const EvalOptions& o) {
    check_eval_options(o, model.config().backbone.output_stride);
    int64_t limit = o.memory_limit_bytes > 0 ? o.memory_limit_bytes : available_memory_bytes();
    int64_t need = estimate_prediction_bytes(model, image.h, image.w, o);
    STRATA_CHECK(limit <= 0 || need <= limit, "predicting this ", image.w, "x", image.h, " image (width x height) in ",
                 o.mode, " mode needs an estimated ", gib(double(need)), ", more than the ", gib(double(limit)),
                 o.memory_limit_bytes > 0 ? " allowed" : " of memory available now", ": ", memory_advice(o));
    std::vector<ScoreMap> scores;
    for (double s : o.scales) scores.push_back(predict_scale(model, image, o, s));
    return labels_from_scores(scores, image.h, image.w);
}

LabelMap predict_labels_of(PSPNet& model, const Image& image, const EvalOptions& o, const std::string& name) {
    try {
        return predict_labels(model, image, o);
    } catch (const std::bad_alloc&) {
        throw Error(str(name, ": out of memory predicting this ", image.w, "x", image.h, " image (width x height) in ",
                        o.mode, " mode: ", memory_advice(o)));
    } catch (const Error& e) {
        std::string message = e.what();
        bool out_of_memory = message.find("out of CPU memory") != std::string::npos ||
                             message.find("out of CUDA memory") != std::string::npos;
        if (out_of_memory)
            throw Error(str(name, ": out of memory predicting this ", image.w, "x", image.h,
                            " image (width x height) in ", o.mode, " mode (", message, "): ", memory_advice(o)));
        throw Error(str(name, ": ", message));
    }
}

Tensor predict_probabilities(PSPNet& model, const Image& image, const EvalOptions& o) {
    check_eval_options(o, model.config().backbone.output_stride);
    NoGradGuard no_grad;
    int h = image.h, w = image.w;
    Tensor total;
    for (double s : o.scales) {
        ScoreMap m = predict_scale(model, image, o, s);
        Tensor prob = from_vector(m.data, {1, m.classes, m.h, m.w});
        if (m.h != h || m.w != w) prob = upsample_bilinear2d(prob, Size2(h, w), false);
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
                                     const std::function<void(int64_t, int64_t)>& progress, int shard,
                                     int shards) {
    STRATA_CHECK(shards >= 1 && shard >= 0 && shard < shards, "evaluate: shard ", shard, " of ", shards,
                 " does not exist");
    STRATA_CHECK(dataset.has_labels(), "evaluate: ", dataset.description(), " has no labels to evaluate against");
    check_eval_options(options, model.config().backbone.output_stride);  // once, before the first image
    bool was_training = model.is_training();
    model.eval();
    SegmentationMetrics metrics(model.config().classes, ignore_label);
    int64_t n = max_images > 0 ? std::min(max_images, dataset.size()) : dataset.size();
    const int64_t begin = shard * n / shards, end = (shard + 1) * n / shards;
    for (int64_t i = begin; i < end; ++i) {
        Sample s = dataset.get(i);
        LabelMap pred = predict_labels_of(model, s.image, options, s.name);
        metrics.add(pred.data.data(), s.label.data.data(), int64_t(pred.data.size()));
        if (on_prediction) on_prediction(i, s, pred);
        if (progress) progress(i + 1 - begin, end - begin);
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
