// Image and label files. Decoding: libjpeg(-turbo) for JPEG, libpng for PNG (photos and labels), stb_image for BMP
// only. Writing: libpng for every PNG, stb_image_write for JPEG (our own pixels, so no untrusted input reaches it).
//
// Why not stb_image for JPEG and PNG: the files a dataset or `infer` reads are untrusted, and under UBSan fuzzed
// JPEGs made stb_image write out of bounds (stbi__build_huffman indexes past its 257-entry table, inside the
// decoder's own state where ASan cannot see it). libjpeg-turbo and libpng are fuzzed continuously upstream (OSS-Fuzz).
// stb_image stays for BMP, a small uncompressed format that fuzz/ exercises through the image loader's fuzz target.
//
// Every decoder reads the header first and checks the claimed width x height against max_image_pixels before it
// allocates anything: a 74-byte PNG may claim 60000x60000 pixels.
//
// NOTE: libpng and libjpeg report errors by longjmp-ing back to a setjmp in the caller. Jumping over a C++ object's
// destructor is undefined, so each function that calls setjmp (png_read_header, png_read_pixels, png_encode,
// jpeg_read_header_from, jpeg_read_pixels) holds no C++ objects of its own: it works on caller-owned state and
// buffers and returns false with a message, and the caller throws.
#include "data/image.h"

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>

// jpeglib.h uses FILE and size_t without including their headers
#include <jpeglib.h>
#include <jerror.h>

#include "framework/check.h"

// stb_image and stb_image_write are compiled here and only here; STATIC keeps their symbols private to this file.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
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

// A decoded PNG: `bytes` holds the rows one after another. For a label (no interpretation), one byte per sample for
// bit depths up to 8 (1, 2 and 4-bit samples are unpacked but not rescaled), two big-endian bytes for 16-bit
// samples; for a photo, 8-bit RGB. The header fields describe the file, before the transforms.
struct PngRaw {
    int h = 0, w = 0;
    int color_type = 0;  // PNG_COLOR_TYPE_{GRAY, PALETTE, RGB, RGB_ALPHA, GRAY_ALPHA}
    int bit_depth = 0;
    int channels = 0;
    size_t row_bytes = 0;  // after the transforms
    std::vector<uint8_t> bytes;
    std::vector<png_bytep> rows;
};

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

namespace {

// ---- reading: the whole file into memory, then one decoder chosen by the file's first bytes ----

// Every decoder runs in two phases: the header (dimensions and format), then, after the caller has checked the
// dimensions against max_image_pixels and allocated the pixels, the pixel data. A file's claim is never trusted
// with an allocation before it has passed that check.

// The largest file an image of max_pixels pixels can need: 16-bit RGBA PNG samples are 8 bytes a pixel before
// compression, and metadata chunks add some; a bigger file is refused before it is read into memory.
int64_t max_file_bytes(int64_t max_pixels) {
    return max_pixels > (INT64_MAX - (int64_t(64) << 20)) / 16 ? INT64_MAX : 16 * max_pixels + (int64_t(64) << 20);
}

std::vector<uint8_t> read_file_bytes(const std::string& path, int64_t max_pixels, const char* what) {
    check_exists(path, what);
    std::error_code ec;
    auto file_size = std::filesystem::file_size(path, ec);
    STRATA_CHECK(ec || int64_t(file_size) <= max_file_bytes(max_pixels), what, ": ", path, " is ", file_size,
                 " bytes, more than an image of max_image_pixels=", max_pixels, " pixels can need (",
                 max_file_bytes(max_pixels), " bytes); raise max_image_pixels if the image is genuine");
    File file(path, "rb", what);
    std::vector<uint8_t> bytes;
    uint8_t chunk[1 << 16];
    try {
        if (!ec) bytes.reserve(size_t(file_size));
        for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, file.f)) > 0;)
            bytes.insert(bytes.end(), chunk, chunk + got);
    } catch (const std::bad_alloc&) {
        STRATA_FAIL(what, ": out of memory reading ", path, " (", file_size, " bytes)");
    }
    STRATA_CHECK(!std::ferror(file.f), what, ": cannot read ", path, ": ", std::strerror(errno));
    return bytes;
}

void check_dimensions(const std::string& source, int64_t w, int64_t h, int64_t max_pixels, const char* what) {
    STRATA_CHECK(w > 0 && h > 0, what, ": ", source, " claims an empty image (", w, "x", h, " pixels)");
    STRATA_CHECK(w * h <= max_pixels, what, ": ", source, " claims ", w, "x", h, " = ", w * h,
                 " pixels, more than max_image_pixels=", max_pixels,
                 "; raise max_image_pixels if the image is genuine");
}

// Runs `allocate` and turns an out-of-memory failure into an error that names the file and its size.
template <typename Allocate>
void allocate_for(const std::string& source, int64_t w, int64_t h, const char* what, Allocate allocate) {
    try {
        allocate();
    } catch (const std::bad_alloc&) {
        STRATA_FAIL(what, ": out of memory decoding ", source, " (", w, "x", h, " = ", w * h, " pixels); lower "
                    "max_image_pixels to refuse such files, or free memory");
    }
}

bool is_png(const uint8_t* data, size_t size) { return size >= 8 && png_sig_cmp(data, 0, 8) == 0; }
bool is_jpeg(const uint8_t* data, size_t size) {
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}
bool is_bmp(const uint8_t* data, size_t size) { return size >= 2 && data[0] == 'B' && data[1] == 'M'; }

// ---- libpng from memory ----

// A libpng read struct over bytes in memory; the destructor frees it whatever happened.
struct PngReader {
    png_structp png = nullptr;
    png_infop info = nullptr;
    PngMessage message;
    const uint8_t* data = nullptr;
    size_t size = 0, offset = 0;

    PngReader(const uint8_t* bytes, size_t count) : data(bytes), size(count) {
        png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &message, png_error_to_message, png_ignore_warning);
        if (png) info = png_create_info_struct(png);
    }
    ~PngReader() {
        if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    }
    PngReader(const PngReader&) = delete;
    PngReader& operator=(const PngReader&) = delete;
};

void png_read_from_memory(png_structp png, png_bytep out, png_size_t count) {
    auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
    if (count > reader->size - reader->offset) png_error(png, "the file ends early (truncated)");
    std::memcpy(out, reader->data + reader->offset, count);
    reader->offset += count;
}

// The header phase: dimensions and format into `raw`, then the transforms that give one byte per sample (labels:
// samples unpacked but not rescaled, 16-bit kept) or 8-bit RGB (photos: palette and low bit depths expanded, 16-bit
// reduced to its high byte, alpha dropped, gray copied to R, G and B). No C++ objects live in this frame (see the
// NOTE above).
bool png_read_header(PngReader& r, PngRaw& raw, bool to_rgb) {
    if (!r.png || !r.info) {
        std::snprintf(r.message.text, sizeof r.message.text, "out of memory");
        return false;
    }
    if (setjmp(png_jmpbuf(r.png))) return false;
    png_set_read_fn(r.png, &r, png_read_from_memory);
    png_read_info(r.png, r.info);
    raw.w = int(png_get_image_width(r.png, r.info));
    raw.h = int(png_get_image_height(r.png, r.info));
    raw.color_type = png_get_color_type(r.png, r.info);
    raw.bit_depth = png_get_bit_depth(r.png, r.info);
    raw.channels = png_get_channels(r.png, r.info);
    if (to_rgb) {
        png_set_expand(r.png);     // palette -> RGB, gray 1/2/4-bit -> 8-bit, tRNS -> alpha
        png_set_strip_16(r.png);   // 16 -> 8 bits by keeping the high byte
        png_set_strip_alpha(r.png);
        png_set_gray_to_rgb(r.png);
    } else if (raw.bit_depth < 8) {
        png_set_packing(r.png);    // one byte per sample, values kept (no scaling to 0..255)
    }
    png_set_interlace_handling(r.png);  // Adam7 files are de-interlaced by png_read_image
    png_read_update_info(r.png, r.info);
    raw.row_bytes = png_get_rowbytes(r.png, r.info);
    return true;
}

// The pixel phase, into rows the caller allocated for the dimensions of the header phase.
bool png_read_pixels(PngReader& r, png_bytep* rows) {
    if (setjmp(png_jmpbuf(r.png))) return false;
    png_read_image(r.png, rows);
    png_read_end(r.png, nullptr);
    return true;
}

// A whole PNG into `raw` (rows allocated here, after the dimension check).
void png_decode(const uint8_t* data, size_t size, bool to_rgb, PngRaw& raw, const std::string& source,
                int64_t max_pixels, const char* what) {
    PngReader reader(data, size);
    const char* noun = to_rgb ? "image" : "PNG";
    STRATA_CHECK(png_read_header(reader, raw, to_rgb), what, ": ", source, " is not a readable ", noun, " (libpng: ",
                 reader.message.text, ")");
    // a label's format is checked before its pixels are decoded
    if (!to_rgb)
        STRATA_CHECK(raw.color_type == PNG_COLOR_TYPE_GRAY || raw.color_type == PNG_COLOR_TYPE_PALETTE,
                     what, ": wrong channel count: ", source, " is a ", png_color_type_name(raw.color_type),
                     " PNG with ", raw.channels, " channels; a label must be a single-channel PNG of class indices "
                     "(grayscale or palette). A colour-coded label (e.g. Cityscapes *_gtFine_color.png, or a VOC "
                     "label re-saved as RGB) must be converted to indices first");
    check_dimensions(source, raw.w, raw.h, max_pixels, what);
    allocate_for(source, raw.w, raw.h, what, [&] {
        raw.bytes.resize(raw.row_bytes * size_t(raw.h));
        raw.rows.resize(size_t(raw.h));
    });
    for (int y = 0; y < raw.h; ++y) raw.rows[size_t(y)] = raw.bytes.data() + raw.row_bytes * size_t(y);
    STRATA_CHECK(png_read_pixels(reader, raw.rows.data()), what, ": ", source, " is not a readable ", noun,
                 " (libpng: ", reader.message.text, ")");
}

// ---- libjpeg(-turbo) from memory ----

// libjpeg reports a fatal error by calling error_exit, which must not return; ours formats the message and
// longjmps back to the setjmp of the phase that called libjpeg. Warnings about corrupt data (a truncated file, a
// bad Huffman code) are fatal too: libjpeg would carry on and fill the rest of the image with grey, which is
// silently wrong pixels. Harmless warnings (bytes after the image, an unknown JFIF revision) are ignored.
struct JpegReader {
    jpeg_decompress_struct cinfo;
    jpeg_error_mgr err;
    jpeg_progress_mgr progress;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX] = {0};
    bool created = false;

    JpegReader() {
        std::memset(&cinfo, 0, sizeof cinfo);
        std::memset(&progress, 0, sizeof progress);
    }
    ~JpegReader() {
        if (created) jpeg_destroy_decompress(&cinfo);
    }
    JpegReader(const JpegReader&) = delete;
    JpegReader& operator=(const JpegReader&) = delete;
};

// libjpeg-turbo's own fuzzing and TurboJPEG stop a progressive file after this many scans: each scan re-reads the
// whole coefficient buffer, so a small file of thousands of tiny scans costs minutes.
constexpr int kMaxJpegScans = 500;

[[noreturn]] void jpeg_error_to_message(j_common_ptr cinfo) {
    // cinfo is the first member of JpegReader, so the reader is found from it
    auto* reader = reinterpret_cast<JpegReader*>(cinfo);
    (*cinfo->err->format_message)(cinfo, reader->message);
    std::longjmp(reader->jump, 1);
}

void jpeg_emit_to_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;  // trace messages
    int code = cinfo->err->msg_code;
    bool harmless = code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM ||
                    code == JWRN_BOGUS_ICC || code == JWRN_TOO_MUCH_DATA;
    if (!harmless) jpeg_error_to_message(cinfo);
}

void jpeg_limit_scans(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number <= kMaxJpegScans) return;
    auto* reader = reinterpret_cast<JpegReader*>(cinfo);
    std::snprintf(reader->message, sizeof reader->message, "progressive JPEG with more than %d scans",
                  kMaxJpegScans);
    std::longjmp(reader->jump, 1);
}

// The header phase: dimensions, and the output colour space (RGB; CMYK files give CMYK, converted by the caller).
// No C++ objects live in this frame.
bool jpeg_read_header_from(JpegReader& r, const uint8_t* data, size_t size) {
    r.cinfo.err = jpeg_std_error(&r.err);
    r.err.error_exit = jpeg_error_to_message;
    r.err.emit_message = jpeg_emit_to_message;
    if (setjmp(r.jump)) return false;
    jpeg_create_decompress(&r.cinfo);
    r.created = true;
    r.progress.progress_monitor = jpeg_limit_scans;
    r.cinfo.progress = &r.progress;
    jpeg_mem_src(&r.cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&r.cinfo, TRUE);
    bool cmyk = r.cinfo.jpeg_color_space == JCS_CMYK || r.cinfo.jpeg_color_space == JCS_YCCK;
    r.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    return true;
}

// The pixel phase: rows of `components` bytes per pixel into `out`, which the caller allocated for the header's
// dimensions; what libjpeg is about to write is checked against that first.
bool jpeg_read_pixels(JpegReader& r, uint8_t* out, int components) {
    if (setjmp(r.jump)) return false;
    jpeg_start_decompress(&r.cinfo);
    if (r.cinfo.output_width != r.cinfo.image_width || r.cinfo.output_height != r.cinfo.image_height ||
        r.cinfo.output_components != components) {
        std::snprintf(r.message, sizeof r.message, "would decode %ux%u pixels of %d channels, not the header's %ux%u "
                      "of %d", r.cinfo.output_width, r.cinfo.output_height, r.cinfo.output_components,
                      r.cinfo.image_width, r.cinfo.image_height, components);
        return false;
    }
    size_t row_bytes = size_t(r.cinfo.output_width) * size_t(r.cinfo.output_components);
    while (r.cinfo.output_scanline < r.cinfo.output_height) {
        JSAMPROW row = out + size_t(r.cinfo.output_scanline) * row_bytes;
        jpeg_read_scanlines(&r.cinfo, &row, 1);
    }
    jpeg_finish_decompress(&r.cinfo);
    return true;
}

Image jpeg_decode_rgb(const uint8_t* data, size_t size, const std::string& source, int64_t max_pixels,
                      const char* what) {
    JpegReader reader;
    STRATA_CHECK(jpeg_read_header_from(reader, data, size), what, ": ", source, " is not a readable image (libjpeg: ",
                 reader.message, ")");
    int w = int(reader.cinfo.image_width), h = int(reader.cinfo.image_height);
    check_dimensions(source, w, h, max_pixels, what);
    bool cmyk = reader.cinfo.out_color_space == JCS_CMYK;
    Image image;
    std::vector<uint8_t> cmyk_pixels;
    allocate_for(source, w, h, what, [&] {
        image = Image(h, w, 3);
        if (cmyk) cmyk_pixels.resize(size_t(w) * size_t(h) * 4);
    });
    STRATA_CHECK(jpeg_read_pixels(reader, cmyk ? cmyk_pixels.data() : image.data.data(), cmyk ? 4 : 3), what, ": ",
                 source, " is not a readable image (libjpeg: ", reader.message, ")");
    if (cmyk) {
        // Adobe writes CMYK JPEGs inverted (255 = no ink), so each channel times K gives the colour directly.
        for (size_t i = 0; i < size_t(w) * size_t(h); ++i) {
            const uint8_t* p = &cmyk_pixels[4 * i];
            for (int ch = 0; ch < 3; ++ch) image.data[3 * i + size_t(ch)] = uint8_t((p[ch] * p[3] + 127) / 255);
        }
    }
    return image;
}

// ---- BMP: stb_image, after the header's dimensions were checked ----

Image bmp_decode_rgb(const uint8_t* data, size_t size, const std::string& source, int64_t max_pixels,
                     const char* what) {
    STRATA_CHECK(size <= size_t(INT32_MAX), what, ": ", source, " is larger than 2 GB");
    int w = 0, h = 0, channels_in_file = 0;
    STRATA_CHECK(stbi_info_from_memory(data, int(size), &w, &h, &channels_in_file), what, ": ", source,
                 " is not a readable image (BMP: ", stbi_failure_reason(), ")");
    // a top-down BMP stores a negative height, which stb_image's header reader passes on as is
    check_dimensions(source, w, std::abs(int64_t(h)), max_pixels, what);
    std::unique_ptr<uint8_t, void (*)(void*)> pixels(
        stbi_load_from_memory(data, int(size), &w, &h, &channels_in_file, 3), stbi_image_free);
    STRATA_CHECK(pixels, what, ": ", source, " is not a readable image (BMP: ", stbi_failure_reason(), ")");
    Image image;
    allocate_for(source, w, h, what, [&] { image = Image(h, w, 3); });
    std::memcpy(image.data.data(), pixels.get(), image.data.size());
    return image;
}

}  // namespace

// ---- reading ----

Image decode_rgb(const uint8_t* data, size_t size, const std::string& source, int64_t max_pixels) {
    const char* what = "load_rgb";
    if (is_jpeg(data, size)) return jpeg_decode_rgb(data, size, source, max_pixels, what);
    if (is_bmp(data, size)) return bmp_decode_rgb(data, size, source, max_pixels, what);
    STRATA_CHECK(is_png(data, size), what, ": ", source, " is not a readable image (", size == 0 ? "the file is empty"
                 : "neither JPEG, PNG nor BMP", "); JPEG, PNG and BMP are supported");
    PngRaw raw;
    png_decode(data, size, true, raw, source, max_pixels, what);
    STRATA_CHECK(raw.row_bytes == size_t(raw.w) * 3, what, ": ", source, ": libpng gave rows of ", raw.row_bytes,
                 " bytes for a ", raw.w, "-pixel RGB row");
    Image image;  // the rows libpng wrote are already the image's layout
    image.h = raw.h;
    image.w = raw.w;
    image.c = 3;
    image.data = std::move(raw.bytes);
    return image;
}

LabelMap decode_label(const uint8_t* data, size_t size, const std::string& source, int64_t max_pixels) {
    const char* what = "load_label";
    if (!is_png(data, size)) {
        STRATA_CHECK(!(size >= 2 && data[0] == 0xFF && data[1] == 0xD8), what, ": ", source, " is a JPEG; labels must "
                     "be PNG files (JPEG's lossy compression changes class indices)");
        STRATA_FAIL(what, ": ", source, " is not a PNG file; labels must be single-channel PNGs of class indices");
    }
    PngRaw raw;
    png_decode(data, size, false, raw, source, max_pixels, what);
    LabelMap label;
    allocate_for(source, raw.w, raw.h, what, [&] { label = LabelMap(raw.h, raw.w); });
    if (raw.bit_depth == 16) {
        for (size_t i = 0; i < label.data.size(); ++i)
            label.data[i] = int32_t(raw.bytes[2 * i]) << 8 | int32_t(raw.bytes[2 * i + 1]);
    } else {
        for (size_t i = 0; i < label.data.size(); ++i) label.data[i] = raw.bytes[i];
    }
    return label;
}

Image load_rgb(const std::string& path, int64_t max_pixels) {
    std::vector<uint8_t> bytes = read_file_bytes(path, max_pixels, "load_rgb");
    return decode_rgb(bytes.data(), bytes.size(), path, max_pixels);
}

LabelMap load_label(const std::string& path, int64_t max_pixels) {
    std::vector<uint8_t> bytes = read_file_bytes(path, max_pixels, "load_label");
    return decode_label(bytes.data(), bytes.size(), path, max_pixels);
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
