// Data augmentation for semantic segmentation, in semseg's order (hszhao/semseg tool/train.py, util/transform.py):
//
//   1. RandScale [0.5, 2]     s ~ U(0.5, 2), both axes; image bilinear, label nearest neighbour
//   2. RandRotate [-10, 10]   with p 0.5, about the centre, same size; image bilinear with the mean colour outside,
//                             label nearest with 255 outside
//   3. Gaussian blur          with p 0.5, 5x5, sigma 1.1 (OpenCV's sigma for a 5x5 kernel given sigma 0)
//   4. Horizontal flip        with p 0.5
//   5. Crop                   pad to the crop size if smaller (half on each side; mean colour / 255), then a uniform
//                             random crop (or the centre crop for evaluation)
//   6. Normalize              (x - 255 mean) / (255 std) with ImageNet's RGB mean/std, to a float CHW buffer
//
// Labels are only ever moved, never interpolated, so they stay in the label set; everything that comes from
// outside the image (rotation corners, padding) is 255, which the loss ignores.
//
// The image is float (0..255) from the first transform to the last, as in semseg (it converts to float32 before
// augmenting), so no rounding happens between steps. Every random choice is drawn from the Generator passed in,
// in the order above: the loader gives each sample its own Generator seeded from (seed, epoch, index).
#pragma once

#include <array>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "framework/random.h"

namespace strata {

// A float image, HWC like Image: data[(y * w + x) * c + ch], values 0..255.
struct ImageF {
    int h = 0, w = 0, c = 0;
    std::vector<float> data;

    ImageF() = default;
    ImageF(int height, int width, int channels, float fill = 0.0f)
        : h(height), w(width), c(channels), data(size_t(height) * size_t(width) * size_t(channels), fill) {}
    float* pixel(int y, int x) { return &data[(size_t(y) * size_t(w) + size_t(x)) * size_t(c)]; }
    const float* pixel(int y, int x) const { return &data[(size_t(y) * size_t(w) + size_t(x)) * size_t(c)]; }
};

ImageF to_float(const Image& image);

using Rgbf = std::array<float, 3>;
// ImageNet's statistics of RGB values in [0, 1] (semseg multiplies them by 255).
constexpr Rgbf kImageNetMean = {0.485f, 0.456f, 0.406f};
constexpr Rgbf kImageNetStd = {0.229f, 0.224f, 0.225f};

struct TransformConfig {
    float scale_min = 0.5f, scale_max = 2.0f;        // RandScale; 1 and 1 turn it off
    float rotate_min = -10.0f, rotate_max = 10.0f;   // RandRotate, degrees (positive = counter-clockwise)
    float rotate_p = 0.5f;
    float blur_p = 0.5f;                             // 5x5 Gaussian, sigma 1.1
    float flip_p = 0.5f;
    int crop_h = 473, crop_w = 473;                  // 0 and 0: no crop (a batch's samples must then share a size)
    bool random_crop = true;                         // false: the centre crop
    Rgbf mean = kImageNetMean;                       // Normalize, and 255 * mean is the padding colour
    Rgbf std = kImageNetStd;
};
// semseg's training augmentation (all six steps) with a crop of crop_h x crop_w.
TransformConfig train_transforms(int crop_h, int crop_w);
// semseg's validation transforms: the centre crop (with padding) and Normalize only; crop 0 x 0 keeps whole images.
TransformConfig eval_transforms(int crop_h = 0, int crop_w = 0);

// ---- the geometric primitives ----
// Bilinear resize with pixel centres aligned (OpenCV's INTER_LINEAR: src = (dst + 0.5) * in/out - 0.5, clamped).
ImageF resize_bilinear(const ImageF& image, int out_h, int out_w);
// The same on an 8-bit image: equals resize_bilinear(to_float(image), ...) without the full-size float copy.
ImageF resize_bilinear(const Image& image, int out_h, int out_w);
// Nearest-neighbour resize taking the source pixel under each output pixel's centre: src = floor((dst + 0.5) * in/out).
LabelMap resize_nearest(const LabelMap& label, int out_h, int out_w);
// Rotation by `degrees` about (w/2, h/2), keeping the size (OpenCV's getRotationMatrix2D + warpAffine): image
// bilinear with `border` outside, label nearest with 255 outside.
void rotate(ImageF& image, LabelMap& label, float degrees, const Rgbf& border);
// Separable Gaussian blur, kernel `ksize` x `ksize`, edges mirrored without repeating the edge pixel (OpenCV's
// default BORDER_REFLECT_101).
void gaussian_blur(ImageF& image, int ksize, float sigma);
void hflip(ImageF& image, LabelMap& label);
// Pads to at least min_h x min_w: half of the missing rows (columns) before, the rest after, as semseg does;
// `border` in the image, 255 in the label.
void pad_to(ImageF& image, LabelMap& label, int min_h, int min_w, const Rgbf& border);
// Cuts the crop_h x crop_w window whose top-left pixel is (top, left); it must lie inside the image.
void crop(ImageF& image, LabelMap& label, int top, int left, int crop_h, int crop_w);

// ---- the random transforms, semseg's steps 1-5 (each draws from `gen`) ----
void rand_scale(ImageF& image, LabelMap& label, float scale_min, float scale_max, Generator& gen);
void rand_rotate(ImageF& image, LabelMap& label, float degrees_min, float degrees_max, float p, const Rgbf& border,
                 Generator& gen);
void rand_gaussian_blur(ImageF& image, float p, Generator& gen);
void rand_hflip(ImageF& image, LabelMap& label, float p, Generator& gen);
void rand_crop(ImageF& image, LabelMap& label, int crop_h, int crop_w, bool random, const Rgbf& border,
               Generator& gen);

// Step 6: writes (x - 255 mean) / (255 std) per channel to out, laid out CHW (3 x h x w floats).
void normalize_to_chw(const ImageF& image, const Rgbf& mean, const Rgbf& std, float* out);

// The whole pipeline on one sample. A sample without a label (a test split) gets an all-255 label.
struct TransformedSample {
    int h = 0, w = 0;
    std::vector<float> image;    // 3 x h x w, normalised
    std::vector<int32_t> label;  // h x w
};
TransformedSample transform_sample(const Sample& sample, const TransformConfig& config, Generator& gen);

}  // namespace strata
