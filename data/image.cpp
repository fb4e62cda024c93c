// Image and label files: stb_image decodes photos and writes JPEGs; libpng reads labels and writes every PNG.
//
// NOTE: libpng reports errors by longjmp-ing back to a setjmp in the caller. Jumping over a C++ object's
// destructor is undefined, so each function that calls setjmp (png_decode, png_encode) holds no C++ objects of its
// own: it works on caller-owned buffers and returns false with a message, and the caller throws.
#include "data/image.h"

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "framework/check.h"

// stb_image and stb_image_write are compiled here and only here; STATIC keeps their symbols private to this file.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace strata {

namespace {

void check_exists(const std::string& path, const char* what) {
    std::error_code ec;
    STRATA_CHECK(std::filesystem::is_regular_file(path, ec), what, ": file not found: ", path);
}

// ---- libpng, wrapped so that its errors become messages ----

struct PngMessage {
    char text[256] = {0};
};

void png_error_to_message(png_structp png, png_const_charp message) {
    auto* out = static_cast<PngMessage*>(png_get_error_ptr(png));
    std::snprintf(out->text, sizeof out->text, "%s", message);
    png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

// A decoded PNG before any interpretation: `bytes` holds the rows one after another, one byte per sample for bit
// depths up to 8 (1, 2 and 4-bit samples are unpacked but not rescaled), two big-endian bytes for 16-bit samples.
struct PngRaw {
    int h = 0, w = 0;
    int color_type = 0;  // PNG_COLOR_TYPE_{GRAY, PALETTE, RGB, RGB_ALPHA, GRAY_ALPHA}
    int bit_depth = 0;
    int channels = 0;
    std::vector<uint8_t> bytes;
    std::vector<png_bytep> rows;
};

// Reads the whole PNG open on `file` into `raw`. No C++ objects live in this frame (see the NOTE above).
bool png_decode(FILE* file, PngRaw& raw, PngMessage& message) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &message, png_error_to_message,
                                             png_ignore_warning);
    if (!png) return false;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    png_init_io(png, file);
    png_read_info(png, info);
    raw.w = int(png_get_image_width(png, info));
    raw.h = int(png_get_image_height(png, info));
    raw.color_type = png_get_color_type(png, info);
    raw.bit_depth = png_get_bit_depth(png, info);
    raw.channels = png_get_channels(png, info);
    if (raw.bit_depth < 8) png_set_packing(png);  // one byte per sample, values kept (no scaling to 0..255)
    png_set_interlace_handling(png);               // Adam7 files are de-interlaced by png_read_image
    png_read_update_info(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    raw.bytes.resize(row_bytes * size_t(raw.h));
    raw.rows.resize(size_t(raw.h));
    for (int y = 0; y < raw.h; ++y) raw.rows[size_t(y)] = raw.bytes.data() + row_bytes * size_t(y);
    png_read_image(png, raw.rows.data());
    png_read_end(png, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
}

// Writes a PNG of `color_type` from rows already in PNG byte order; `palette` (256 entries) for a palette PNG, else
// null. No C++ objects live in this frame.
bool png_encode(FILE* file, int h, int w, int color_type, int bit_depth, const png_color* palette,
                png_bytep* rows, PngMessage& message) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &message, png_error_to_message,
                                              png_ignore_warning);
    if (!png) return false;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, nullptr);
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return false;
    }
    png_init_io(png, file);
    // zlib level 3 instead of the default 6: about twice as fast on noisy photos, and about as small
    png_set_compression_level(png, 3);
    png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, 256);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return true;
}

const char* png_color_type_name(int color_type) {
    switch (color_type) {
        case PNG_COLOR_TYPE_GRAY: return "grayscale";
        case PNG_COLOR_TYPE_PALETTE: return "palette";
        case PNG_COLOR_TYPE_RGB: return "RGB";
        case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
        case PNG_COLOR_TYPE_GRAY_ALPHA: return "grayscale+alpha";
        default: return "unknown";
    }
}

// A FILE* that closes itself. Opened in binary mode; errors name the file and the system's reason.
struct File {
    FILE* f = nullptr;
    File(const std::string& path, const char* mode, const char* what) : f(std::fopen(path.c_str(), mode)) {
        STRATA_CHECK(f, what, ": cannot open ", path, ": ", std::strerror(errno));
    }
    ~File() {
        if (f) std::fclose(f);
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
};

// Writes the rows of a label as a PNG; the caller has checked the value range.
void write_label_png(const std::string& path, const LabelMap& label, int color_type, int bit_depth,
                     const png_color* palette, const char* what) {
    STRATA_CHECK(label.h > 0 && label.w > 0, what, ": empty label map for ", path);
    int bytes_per_sample = bit_depth / 8;
    std::vector<uint8_t> bytes(size_t(label.h) * size_t(label.w) * size_t(bytes_per_sample));
    for (size_t i = 0; i < label.data.size(); ++i) {
        uint32_t v = uint32_t(label.data[i]);
        if (bytes_per_sample == 1) {
            bytes[i] = uint8_t(v);
        } else {  // PNG stores 16-bit samples big-endian
            bytes[2 * i] = uint8_t(v >> 8);
            bytes[2 * i + 1] = uint8_t(v & 0xFF);
        }
    }
    size_t row_bytes = size_t(label.w) * size_t(bytes_per_sample);
    std::vector<png_bytep> rows(static_cast<size_t>(label.h));
    for (int y = 0; y < label.h; ++y) rows[size_t(y)] = bytes.data() + size_t(y) * row_bytes;
    File file(path, "wb", what);
    PngMessage message;
    bool ok = png_encode(file.f, label.h, label.w, color_type, bit_depth, palette, rows.data(), message);
    STRATA_CHECK(ok, what, ": cannot write ", path, ": ", message.text);
}

void check_label_range(const LabelMap& label, int32_t max_value, const std::string& path, const char* what) {
    for (int32_t v : label.data) {
        STRATA_CHECK(v >= 0 && v <= max_value, what, ": label value ", v, " does not fit in ", path,
                     " (allowed 0..", max_value, ")");
    }
}

}  // namespace

// ---- reading ----

Image load_rgb(const std::string& path) {
    check_exists(path, "load_rgb");
    int w = 0, h = 0, channels_in_file = 0;
    // Asking for 3 channels expands grayscale (some ADE20K JPEGs) and drops alpha.
    uint8_t* pixels = stbi_load(path.c_str(), &w, &h, &channels_in_file, 3);
    STRATA_CHECK(pixels, "load_rgb: ", path, " is not a readable image (", stbi_failure_reason(),
                 "); JPEG, PNG and BMP are supported");
    Image image(h, w, 3);
    std::memcpy(image.data.data(), pixels, image.data.size());
    stbi_image_free(pixels);
    return image;
}

LabelMap load_label(const std::string& path) {
    check_exists(path, "load_label");
    File file(path, "rb", "load_label");
    uint8_t signature[8] = {0};
    size_t got = std::fread(signature, 1, 8, file.f);
    if (got < 8 || png_sig_cmp(signature, 0, 8) != 0) {
        bool jpeg = got >= 2 && signature[0] == 0xFF && signature[1] == 0xD8;
        STRATA_CHECK(!jpeg, "load_label: ", path, " is a JPEG; labels must be PNG files (JPEG's lossy compression "
                     "changes class indices)");
        STRATA_FAIL("load_label: ", path, " is not a PNG file; labels must be single-channel PNGs of class indices");
    }
    std::rewind(file.f);
    PngRaw raw;
    PngMessage message;
    STRATA_CHECK(png_decode(file.f, raw, message), "load_label: ", path, " is not a readable PNG (libpng: ",
                 message.text, ")");
    STRATA_CHECK(raw.color_type == PNG_COLOR_TYPE_GRAY || raw.color_type == PNG_COLOR_TYPE_PALETTE,
                 "load_label: wrong channel count: ", path, " is a ", png_color_type_name(raw.color_type), " PNG with ",
                 raw.channels, " channels; a label must be a single-channel PNG of class indices (grayscale or "
                 "palette). A colour-coded label (e.g. Cityscapes *_gtFine_color.png, or a VOC label re-saved as RGB) "
                 "must be converted to indices first");
    LabelMap label(raw.h, raw.w);
    if (raw.bit_depth == 16) {
        for (size_t i = 0; i < label.data.size(); ++i)
            label.data[i] = int32_t(raw.bytes[2 * i]) << 8 | int32_t(raw.bytes[2 * i + 1]);
    } else {
        for (size_t i = 0; i < label.data.size(); ++i) label.data[i] = raw.bytes[i];
    }
    return label;
}

// ---- writing ----

void save_png(const std::string& path, const Image& image) {
    STRATA_CHECK(image.c == 1 || image.c == 3 || image.c == 4, "save_png: ", path, ": an image needs 1, 3 or 4 "
                 "channels, got ", image.c);
    STRATA_CHECK(image.h > 0 && image.w > 0, "save_png: empty image for ", path);
    int color_type = image.c == 1 ? PNG_COLOR_TYPE_GRAY : image.c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    std::vector<png_bytep> rows(static_cast<size_t>(image.h));
    for (int y = 0; y < image.h; ++y) rows[size_t(y)] = const_cast<uint8_t*>(image.pixel(y, 0));
    File file(path, "wb", "save_png");
    PngMessage message;
    bool ok = png_encode(file.f, image.h, image.w, color_type, 8, nullptr, rows.data(), message);
    STRATA_CHECK(ok, "save_png: cannot write ", path, ": ", message.text);
}

void save_jpg(const std::string& path, const Image& image, int quality) {
    STRATA_CHECK(image.c == 1 || image.c == 3, "save_jpg: ", path, ": a JPEG needs 1 or 3 channels, got ", image.c);
    STRATA_CHECK(image.h > 0 && image.w > 0, "save_jpg: empty image for ", path);
    STRATA_CHECK(quality >= 1 && quality <= 100, "save_jpg: quality must be 1..100, got ", quality);
    int ok = stbi_write_jpg(path.c_str(), image.w, image.h, image.c, image.data.data(), quality);
    STRATA_CHECK(ok, "save_jpg: cannot write ", path, ": ", std::strerror(errno));
}

void save_label_png(const std::string& path, const LabelMap& label, int bit_depth) {
    STRATA_CHECK(bit_depth == 8 || bit_depth == 16, "save_label_png: bit_depth must be 8 or 16, got ", bit_depth);
    check_label_range(label, bit_depth == 8 ? 255 : 65535, path, "save_label_png");
    write_label_png(path, label, PNG_COLOR_TYPE_GRAY, bit_depth, nullptr, "save_label_png");
}

void save_palette_png(const std::string& path, const LabelMap& label, const std::vector<Rgb>& palette) {
    STRATA_CHECK(palette.size() <= 256, "save_palette_png: a PNG palette holds at most 256 colours, got ",
                 palette.size());
    check_label_range(label, 255, path, "save_palette_png");
    png_color entries[256];
    for (int i = 0; i < 256; ++i) {
        Rgb c = size_t(i) < palette.size() ? palette[size_t(i)] : voc_color(i);
        entries[i] = png_color{c[0], c[1], c[2]};
    }
    write_label_png(path, label, PNG_COLOR_TYPE_PALETTE, 8, entries, "save_palette_png");
}

void save_palette_png(const std::string& path, const LabelMap& label) {
    save_palette_png(path, label, voc_palette());
}

// ---- colours ----

Rgb voc_color(int index) {
    // Bit 0 of the index goes to R, bit 1 to G, bit 2 to B, starting at the most significant bit of each and
    // moving one bit lower for every 3 index bits: 1 -> (128,0,0), 2 -> (0,128,0), 8 -> (64,0,0), 255 -> (224,224,192).
    int c = index, r = 0, g = 0, b = 0;
    for (int j = 0; j < 8; ++j) {
        r |= (c & 1) << (7 - j);
        g |= ((c >> 1) & 1) << (7 - j);
        b |= ((c >> 2) & 1) << (7 - j);
        c >>= 3;
    }
    return Rgb{uint8_t(r), uint8_t(g), uint8_t(b)};
}

std::vector<Rgb> voc_palette() {
    std::vector<Rgb> palette(256);
    for (int i = 0; i < 256; ++i) palette[size_t(i)] = voc_color(i);
    return palette;
}

Image colorize(const LabelMap& label, const std::vector<Rgb>& palette) {
    Image image(label.h, label.w, 3);
    for (size_t i = 0; i < label.data.size(); ++i) {
        int32_t v = label.data[i];
        Rgb c = v >= 0 && size_t(v) < palette.size() ? palette[size_t(v)] : voc_color(v & 0xFF);
        image.data[3 * i] = c[0];
        image.data[3 * i + 1] = c[1];
        image.data[3 * i + 2] = c[2];
    }
    return image;
}

}  // namespace strata
