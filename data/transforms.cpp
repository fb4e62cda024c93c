// semseg's augmentation pipeline; the order and the random draws are described in transforms.h.
//
// Coordinates: pixel (x, y) has its centre at (x, y); an image of width w covers [-0.5, w - 0.5).
//
// NOTE: the label's nearest-neighbour resize takes the source pixel under the output pixel's centre,
// floor((x + 0.5) * in / out). OpenCV's INTER_NEAREST (what semseg uses) takes floor(x * in / out), which shifts
// labels by up to half a source pixel against the bilinearly resized image; the centred rule keeps image and label
// aligned.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "framework/check.h"

namespace strata {

ImageF to_float(const Image& image) {
    ImageF out(image.h, image.w, image.c);
    for (size_t i = 0; i < image.data.size(); ++i) out.data[i] = float(image.data[i]);
    return out;
}

TransformConfig train_transforms(int crop_h, int crop_w) {
    TransformConfig config;
    config.crop_h = crop_h;
    config.crop_w = crop_w;
    return config;
}

TransformConfig eval_transforms(int crop_h, int crop_w) {
    TransformConfig config;
    config.scale_min = config.scale_max = 1.0f;
    config.rotate_p = 0.0f;
    config.blur_p = 0.0f;
    config.flip_p = 0.0f;
    config.crop_h = crop_h;
    config.crop_w = crop_w;
    config.random_crop = false;
    return config;
}

// ---- geometric primitives ----

namespace {

// The resize of both overloads below. Src is Image (uint8) or ImageF; every source value is read as a float, and
// a uint8 converts to float exactly, so resizing an Image equals resizing to_float(Image) bit for bit without the
// full-size float copy (4 bytes per value instead of 1: what made a large input's prediction grow).
template <typename Src>
ImageF resize_bilinear_from(const Src& image, int out_h, int out_w) {
    STRATA_CHECK(out_h > 0 && out_w > 0, "resize_bilinear: output size must be positive, got ", out_h, "x", out_w);
    ImageF out(out_h, out_w, image.c);
    float scale_y = float(image.h) / float(out_h), scale_x = float(image.w) / float(out_w);
    // Per output column: the left source column and the weight of the right one (the same for every row).
    std::vector<int> x0(size_t(out_w), 0), x1(size_t(out_w), 0);
    std::vector<float> fx(size_t(out_w), 0.0f);
    for (int x = 0; x < out_w; ++x) {
        float sx = std::max((float(x) + 0.5f) * scale_x - 0.5f, 0.0f);
        x0[size_t(x)] = std::min(int(sx), image.w - 1);
        x1[size_t(x)] = std::min(x0[size_t(x)] + 1, image.w - 1);
        fx[size_t(x)] = sx - float(x0[size_t(x)]);
    }
    for (int y = 0; y < out_h; ++y) {
        float sy = std::max((float(y) + 0.5f) * scale_y - 0.5f, 0.0f);
        int y0 = std::min(int(sy), image.h - 1), y1 = std::min(y0 + 1, image.h - 1);
        float fy = sy - float(y0);
        for (int x = 0; x < out_w; ++x) {
            const auto* a = image.pixel(y0, x0[size_t(x)]);
            const auto* b = image.pixel(y0, x1[size_t(x)]);
            const auto* c = image.pixel(y1, x0[size_t(x)]);
            const auto* d = image.pixel(y1, x1[size_t(x)]);
            float wx = fx[size_t(x)];
            float* o = out.pixel(y, x);
            for (int ch = 0; ch < image.c; ++ch) {
                float top = float(a[ch]) + wx * (float(b[ch]) - float(a[ch]));
                float bottom = float(c[ch]) + wx * (float(d[ch]) - float(c[ch]));
                o[ch] = top + fy * (bottom - top);
            }
        }
    }
    return out;
}

}  // namespace

ImageF resize_bilinear(const ImageF& image, int out_h, int out_w) { return resize_bilinear_from(image, out_h, out_w); }

ImageF resize_bilinear(const Image& image, int out_h, int out_w) { return resize_bilinear_from(image, out_h, out_w); }

LabelMap resize_nearest(const LabelMap& label, int out_h, int out_w) {
    STRATA_CHECK(out_h > 0 && out_w > 0, "resize_nearest: output size must be positive, got ", out_h, "x", out_w);
    LabelMap out(out_h, out_w);
    for (int y = 0; y < out_h; ++y) {
        int sy = std::min(int((int64_t(2 * y + 1) * label.h) / (2 * int64_t(out_h))), label.h - 1);
        for (int x = 0; x < out_w; ++x) {
            int sx = std::min(int((int64_t(2 * x + 1) * label.w) / (2 * int64_t(out_w))), label.w - 1);
            out.at(y, x) = label.at(sy, sx);
        }
    }
    return out;
}

void rotate(ImageF& image, LabelMap& label, float degrees, const Rgbf& border) {
    // OpenCV's rotation matrix maps a source point to its destination: d = A (s - c) + c, with
    // A = [[cos, sin], [-sin, cos]] and c = (w/2, h/2). Each output pixel pulls from s = A^-1 (d - c) + c,
    // A^-1 = [[cos, -sin], [sin, cos]].
    STRATA_CHECK(image.c == 3, "rotate: expected a 3-channel image, got ", image.c);
    double radians = double(degrees) * M_PI / 180.0;
    float cs = float(std::cos(radians)), sn = float(std::sin(radians));
    float cx = float(image.w) * 0.5f, cy = float(image.h) * 0.5f;
    ImageF out(image.h, image.w, image.c);
    LabelMap out_label(label.h, label.w, kIgnoreLabel);
    for (int y = 0; y < image.h; ++y) {
        for (int x = 0; x < image.w; ++x) {
            float dx = float(x) - cx, dy = float(y) - cy;
            float sx = cs * dx - sn * dy + cx;
            float sy = sn * dx + cs * dy + cy;
            // image: bilinear over the four neighbours, a neighbour outside the image counting as `border`
            int x0 = int(std::floor(sx)), y0 = int(std::floor(sy));
            float fx = sx - float(x0), fy = sy - float(y0);
            float* o = out.pixel(y, x);
            for (int ch = 0; ch < 3; ++ch) o[ch] = 0.0f;
            for (int j = 0; j < 2; ++j) {
                for (int i = 0; i < 2; ++i) {
                    float weight = (i ? fx : 1.0f - fx) * (j ? fy : 1.0f - fy);
                    int px = x0 + i, py = y0 + j;
                    bool inside = px >= 0 && px < image.w && py >= 0 && py < image.h;
                    const float* src = inside ? image.pixel(py, px) : border.data();
                    for (int ch = 0; ch < 3; ++ch) o[ch] += weight * src[ch];
                }
            }
            // label: the nearest source pixel, or 255 outside
            int nx = int(std::lround(sx)), ny = int(std::lround(sy));
            if (nx >= 0 && nx < label.w && ny >= 0 && ny < label.h) out_label.at(y, x) = label.at(ny, nx);
        }
    }
    image = std::move(out);
    label = std::move(out_label);
}

namespace {

// BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...
int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

}  // namespace

void gaussian_blur(ImageF& image, int ksize, float sigma) {
    STRATA_CHECK(ksize > 0 && ksize % 2 == 1, "gaussian_blur: ksize must be odd and positive, got ", ksize);
    STRATA_CHECK(sigma > 0.0f, "gaussian_blur: sigma must be positive, got ", sigma);
    // k[i] = exp(-(i - r)^2 / (2 sigma^2)), normalised to sum 1; separable, so rows then columns.
    int r = ksize / 2;
    std::vector<float> k(static_cast<size_t>(ksize));
    float total = 0.0f;
    for (int i = 0; i < ksize; ++i) {
        k[size_t(i)] = float(std::exp(-double((i - r) * (i - r)) / (2.0 * double(sigma) * double(sigma))));
        total += k[size_t(i)];
    }
    for (float& v : k) v /= total;
    ImageF rows(image.h, image.w, image.c);
    for (int y = 0; y < image.h; ++y)
        for (int x = 0; x < image.w; ++x)
            for (int ch = 0; ch < image.c; ++ch) {
                float sum = 0.0f;
                for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] * image.pixel(y, reflect101(x + i, image.w))[ch];
                rows.pixel(y, x)[ch] = sum;
            }
    for (int y = 0; y < image.h; ++y)
        for (int x = 0; x < image.w; ++x)
            for (int ch = 0; ch < image.c; ++ch) {
                float sum = 0.0f;
                for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] * rows.pixel(reflect101(y + i, image.h), x)[ch];
                image.pixel(y, x)[ch] = sum;
            }
}

void hflip(ImageF& image, LabelMap& label) {
    for (int y = 0; y < image.h; ++y)
        for (int x = 0; x < image.w / 2; ++x) {
            float* a = image.pixel(y, x);
            float* b = image.pixel(y, image.w - 1 - x);
            for (int ch = 0; ch < image.c; ++ch) std::swap(a[ch], b[ch]);
        }
    for (int y = 0; y < label.h; ++y)
        for (int x = 0; x < label.w / 2; ++x) std::swap(label.at(y, x), label.at(y, label.w - 1 - x));
}

void pad_to(ImageF& image, LabelMap& label, int min_h, int min_w, const Rgbf& border) {
    int pad_h = std::max(min_h - image.h, 0), pad_w = std::max(min_w - image.w, 0);
    if (pad_h == 0 && pad_w == 0) return;
    int top = pad_h / 2, left = pad_w / 2;  // semseg: int(pad / 2) before, the rest after
    ImageF out(image.h + pad_h, image.w + pad_w, image.c);
    LabelMap out_label(label.h + pad_h, label.w + pad_w, kIgnoreLabel);
    for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x) {
            int sy = y - top, sx = x - left;
            bool inside = sy >= 0 && sy < image.h && sx >= 0 && sx < image.w;
            const float* src = inside ? image.pixel(sy, sx) : border.data();
            for (int ch = 0; ch < image.c; ++ch) out.pixel(y, x)[ch] = src[ch];
            if (inside) out_label.at(y, x) = label.at(sy, sx);
        }
    image = std::move(out);
    label = std::move(out_label);
}

void crop(ImageF& image, LabelMap& label, int top, int left, int crop_h, int crop_w) {
    STRATA_CHECK(top >= 0 && left >= 0 && top + crop_h <= image.h && left + crop_w <= image.w, "crop: window ",
                 crop_w, "x", crop_h, " at (", left, ", ", top, ") does not fit in a ", image.w, "x", image.h,
                 " image");
    ImageF out(crop_h, crop_w, image.c);
    LabelMap out_label(crop_h, crop_w);
    for (int y = 0; y < crop_h; ++y) {
        std::copy_n(image.pixel(top + y, left), size_t(crop_w) * size_t(image.c), out.pixel(y, 0));
        for (int x = 0; x < crop_w; ++x) out_label.at(y, x) = label.at(top + y, left + x);
    }
    image = std::move(out);
    label = std::move(out_label);
}

// ---- the random transforms ----

void rand_scale(ImageF& image, LabelMap& label, float scale_min, float scale_max, Generator& gen) {
    float s = gen.uniform(scale_min, scale_max);
    if (s == 1.0f) return;
    // OpenCV's cv2.resize(fx = s, fy = s) output size: round(size * s)
    int h = std::max(1, int(std::lround(double(image.h) * double(s))));
    int w = std::max(1, int(std::lround(double(image.w) * double(s))));
    image = resize_bilinear(image, h, w);
    label = resize_nearest(label, h, w);
}

void rand_rotate(ImageF& image, LabelMap& label, float degrees_min, float degrees_max, float p, const Rgbf& border,
                 Generator& gen) {
    if (gen.uniform() >= p) return;
    rotate(image, label, gen.uniform(degrees_min, degrees_max), border);
}

void rand_gaussian_blur(ImageF& image, float p, Generator& gen) {
    // OpenCV's sigma for a 5x5 kernel when given sigma 0: 0.3 * ((5 - 1) * 0.5 - 1) + 0.8 = 1.1
    if (gen.uniform() < p) gaussian_blur(image, 5, 1.1f);
}

void rand_hflip(ImageF& image, LabelMap& label, float p, Generator& gen) {
    if (gen.uniform() < p) hflip(image, label);
}

void rand_crop(ImageF& image, LabelMap& label, int crop_h, int crop_w, bool random, const Rgbf& border,
               Generator& gen) {
    pad_to(image, label, crop_h, crop_w, border);
    int top = random ? int(gen.randint(image.h - crop_h + 1)) : (image.h - crop_h) / 2;
    int left = random ? int(gen.randint(image.w - crop_w + 1)) : (image.w - crop_w) / 2;
    crop(image, label, top, left, crop_h, crop_w);
}

void normalize_to_chw(const ImageF& image, const Rgbf& mean, const Rgbf& std, float* out) {
    STRATA_CHECK(image.c == 3, "normalize_to_chw: expected a 3-channel image, got ", image.c);
    size_t plane = size_t(image.h) * size_t(image.w);
    for (int ch = 0; ch < 3; ++ch) {
        float m = 255.0f * mean[size_t(ch)], inv_s = 1.0f / (255.0f * std[size_t(ch)]);
        for (size_t i = 0; i < plane; ++i) out[size_t(ch) * plane + i] = (image.data[i * 3 + size_t(ch)] - m) * inv_s;
    }
}

TransformedSample transform_sample(const Sample& sample, const TransformConfig& config, Generator& gen) {
    STRATA_CHECK(sample.image.c == 3, "transforms: sample '", sample.name, "' has ", sample.image.c,
                 " channels, expected RGB");
    STRATA_CHECK(config.scale_min > 0.0f && config.scale_min <= config.scale_max, "transforms: need 0 < scale_min <= "
                 "scale_max, got ", config.scale_min, " and ", config.scale_max);
    STRATA_CHECK(config.crop_h >= 0 && config.crop_w >= 0 && (config.crop_h > 0) == (config.crop_w > 0),
                 "transforms: crop_h and crop_w must both be positive, or both 0 for no crop; got ", config.crop_h,
                 " and ", config.crop_w);
    ImageF image = to_float(sample.image);
    LabelMap label = sample.label.empty() ? LabelMap(image.h, image.w, kIgnoreLabel) : sample.label;
    Rgbf border = {255.0f * config.mean[0], 255.0f * config.mean[1], 255.0f * config.mean[2]};

    rand_scale(image, label, config.scale_min, config.scale_max, gen);
    rand_rotate(image, label, config.rotate_min, config.rotate_max, config.rotate_p, border, gen);
    rand_gaussian_blur(image, config.blur_p, gen);
    rand_hflip(image, label, config.flip_p, gen);
    if (config.crop_h > 0) rand_crop(image, label, config.crop_h, config.crop_w, config.random_crop, border, gen);

    TransformedSample out;
    out.h = image.h;
    out.w = image.w;
    out.image.resize(3 * size_t(image.h) * size_t(image.w));
    normalize_to_chw(image, config.mean, config.std, out.image.data());
    out.label = std::move(label.data);
    return out;
}

}  // namespace strata
