// Images and label maps in memory, and their files.
//
// An Image is 8-bit, interleaved, rows top to bottom (what JPEG and PNG decoders give). A LabelMap holds one class
// index per pixel as int32, so that every label format fits without a second type: VOC's 0..20, Cityscapes' raw
// labelIds, 16-bit instanceIds (up to 33,000), ADE20K's 0..150. By convention 255 means "ignore this pixel".
//
// Reading labels is where datasets go wrong, so it has its own function:
//   - a palette PNG (VOC's SegmentationClass) is read by its palette INDEX, which is the class. Expanding it to RGB
//     (what stb_image and OpenCV do) loses the class, so labels are decoded with libpng, without conversions;
//   - an 8-bit grayscale PNG (SegmentationClassAug, ADE20K, Cityscapes labelIds) gives its values directly;
//   - a 16-bit grayscale PNG (Cityscapes instanceIds) gives its 16-bit values;
//   - anything with colour channels is refused: a colour-coded label must be converted to indices first.
// Photos are decoded by libjpeg (JPEG), libpng (PNG) or stb_image (BMP); grayscale photos are expanded to 3 channels.
//
// Image files are untrusted input: every decoder reads the header first, and a file that claims more than
// `max_pixels` (width x height; the config key max_image_pixels) is refused before any memory is allocated for it.
// A corrupt or truncated file is an error naming the file and the decoder's reason, never grey filler.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace strata {

// The label value that losses and metrics skip (semseg's ignore_label).
constexpr int32_t kIgnoreLabel = 255;

// An 8-bit image: the sample at row y, column x, channel ch is data[(y * w + x) * c + ch].
struct Image {
    int h = 0, w = 0, c = 0;
    std::vector<uint8_t> data;

    Image() = default;
    Image(int height, int width, int channels)
        : h(height), w(width), c(channels), data(size_t(height) * size_t(width) * size_t(channels), 0) {}
    uint8_t* pixel(int y, int x) { return &data[(size_t(y) * size_t(w) + size_t(x)) * size_t(c)]; }
    const uint8_t* pixel(int y, int x) const { return &data[(size_t(y) * size_t(w) + size_t(x)) * size_t(c)]; }
    bool empty() const { return data.empty(); }
};

// One class index per pixel: the label at row y, column x is data[y * w + x].
struct LabelMap {
    int h = 0, w = 0;
    std::vector<int32_t> data;

    LabelMap() = default;
    LabelMap(int height, int width, int32_t fill = 0)
        : h(height), w(width), data(size_t(height) * size_t(width), fill) {}
    int32_t& at(int y, int x) { return data[size_t(y) * size_t(w) + size_t(x)]; }
    int32_t at(int y, int x) const { return data[size_t(y) * size_t(w) + size_t(x)]; }
    bool empty() const { return data.empty(); }
};

using Rgb = std::array<uint8_t, 3>;

// ---- reading ----
// The default of the config key max_image_pixels: the largest width x height an image or label file may claim.
// 10^8 is a 10000x10000 photo (300 MB as RGB), far above every benchmark dataset (Cityscapes: 2048x1024).
constexpr int64_t kDefaultMaxImagePixels = 100000000;

// A photo as 3-channel RGB (grayscale expanded, alpha dropped, 16-bit reduced to 8). Errors name the file: not
// found, not a decodable image (with the decoder's reason), or more than max_pixels pixels claimed.
Image load_rgb(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);
// A label PNG as class indices (see the file comment). Errors name the file: not found, not a PNG (a JPEG label is
// refused: its compression changes class indices), not single-channel, or more than max_pixels pixels claimed.
LabelMap load_label(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);
// The same from a file's bytes in memory; `source` names them in messages. load_rgb and load_label read the file
// and call these; the fuzz targets (fuzz/) call them directly.
Image decode_rgb(const uint8_t* data, size_t size, const std::string& source,
                 int64_t max_pixels = kDefaultMaxImagePixels);
LabelMap decode_label(const uint8_t* data, size_t size, const std::string& source,
                      int64_t max_pixels = kDefaultMaxImagePixels);

// ---- writing (errors name the file; folders must exist) ----
void save_png(const std::string& path, const Image& image);                       // 1, 3 or 4 channels
void save_jpg(const std::string& path, const Image& image, int quality = 95);      // 1 or 3 channels
// A grayscale label PNG, 8-bit (values 0..255) or 16-bit (values 0..65535).
void save_label_png(const std::string& path, const LabelMap& label, int bit_depth = 8);
// A palette PNG whose pixel indices are the labels (values 0..255), so that it reads back exactly and is shown in
// colour by any viewer. The palette is padded to 256 entries with the VOC colours (so 255 shows as VOC's void).
void save_palette_png(const std::string& path, const LabelMap& label, const std::vector<Rgb>& palette);
void save_palette_png(const std::string& path, const LabelMap& label);  // with the VOC palette

// ---- colours ----
// Entry `index` of the standard VOC colour map: the bits of the index are spread over the high bits of R, G and B.
Rgb voc_color(int index);
std::vector<Rgb> voc_palette();  // all 256 entries
// A label map drawn in colour: palette[label] per pixel; labels past the palette's end use voc_color.
Image colorize(const LabelMap& label, const std::vector<Rgb>& palette);

}  // namespace strata
