// Image and label files as untrusted input: claimed dimensions are checked against max_image_pixels before any
// allocation (for JPEG and PNG, photos and labels, and through the datasets and the run config), decoder errors name
// the file and the decoder's reason, and the libjpeg/libpng decoders give the same pixels stb_image gave before.
#include <doctest/doctest.h>
#include <png.h>

#include <cstdio>
// jpeglib.h needs FILE and size_t declared first
#include <jpeglib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "data/formats.h"
#include "data/image.h"
#include "framework/check.h"
#include "models/pspnet/config.h"
#include "models/pspnet/trainer.h"
#include "tests/data/data_test_util.h"

// The decoder Strata used before libjpeg and libpng, compiled here only as the reference of the parity test, on
// files this test writes itself.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

using namespace strata;
using strata::testing::contains;
using strata::testing::gradient_image;
using strata::testing::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

// PNG's CRC-32 (ISO 3309, the same as zlib's), bit by bit.
uint32_t png_crc(const std::string& bytes) {
    uint32_t crc = 0xFFFFFFFFu;
    for (char ch : bytes) {
        crc ^= uint8_t(ch);
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

std::string be32(uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
    return be32(uint32_t(data.size())) + type + data + be32(png_crc(type + data));
}

// What a hostile file does: a valid PNG of a few dozen bytes whose IHDR claims w x h pixels of 8-bit `color_type`,
// followed by one small IDAT (a stored zlib block of 16 zero bytes) and IEND.
void write_png_claiming(const std::string& path, uint32_t w, uint32_t h, int color_type) {
    std::string ihdr = be32(w) + be32(h) + std::string{8, char(color_type), 0, 0, 0};
    std::string zlib = std::string{0x78, 0x01, 0x01, 0x10, 0x00, char(0xEF), char(0xFF)} + std::string(16, '\0') +
                       be32(0x00100001u);  // header, final stored block of 16 bytes, the data, Adler-32
    write_bytes(path, std::string("\x89PNG\r\n\x1A\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", zlib) +
                          png_chunk("IEND", ""));
}

// A real JPEG whose SOF0 header is patched to claim w x h (16-bit fields, big-endian).
std::string jpeg_claiming(const TempDir& dir, int w, int h) {
    std::string small = dir.file("small_for_patch.jpg");
    save_jpg(small, gradient_image(8, 8));
    std::string bytes = read_bytes(small);
    size_t sof = bytes.find("\xFF\xC0");
    REQUIRE(sof != std::string::npos);
    // FF C0, length (2), precision (1), height (2), width (2)
    bytes[sof + 5] = char(h >> 8);
    bytes[sof + 6] = char(h & 0xFF);
    bytes[sof + 7] = char(w >> 8);
    bytes[sof + 8] = char(w & 0xFF);
    return bytes;
}

// A CMYK JPEG of one colour, written the way Adobe's tools write them (inverted: 255 = no ink, Adobe marker).
void write_cmyk_jpeg(const std::string& path, int h, int w, const uint8_t cmyk[4]) {
    jpeg_compress_struct cinfo;
    jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = JDIMENSION(w);
    cinfo.image_height = JDIMENSION(h);
    cinfo.input_components = 4;
    cinfo.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    std::vector<uint8_t> row(size_t(w) * 4);
    for (int x = 0; x < w; ++x) std::copy(cmyk, cmyk + 4, &row[size_t(x) * 4]);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW r = row.data();
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::fclose(f);
}

// What stb_image decodes from `path` as RGB.
Image stb_decode(const std::string& path) {
    int w = 0, h = 0, n = 0;
    uint8_t* pixels = stbi_load(path.c_str(), &w, &h, &n, 3);
    REQUIRE(pixels);
    Image image(h, w, 3);
    std::copy(pixels, pixels + image.data.size(), image.data.begin());
    stbi_image_free(pixels);
    return image;
}

// A photo-like test image: smooth gradients, edges and some texture, so that JPEG's subsampling and IDCT matter.
Image photo_like(int h, int w) {
    Image image(h, w, 3);
    uint32_t state = 12345;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            state = state * 1664525u + 1013904223u;
            int noise = int(state >> 28);  // 0..15
            uint8_t* p = image.pixel(y, x);
            bool inside = (x - w / 2) * (x - w / 2) + (y - h / 3) * (y - h / 3) < (w / 4) * (w / 4);
            p[0] = uint8_t(inside ? 200 + noise : 40 + 3 * x % 150);
            p[1] = uint8_t(inside ? 30 + noise : 20 + 2 * y % 200);
            p[2] = uint8_t(std::min(255, (x + y) + noise));
        }
    return image;
}

}  // namespace

TEST_CASE("image limits: a PNG claiming huge dimensions is refused before allocation, naming the file and the key") {
    TempDir dir("img_png_limit");
    // the file: a tiny PNG label claiming 60000x60000 (the old loader zeroed 3.6 GB before libpng failed)
    std::string label = dir.file("label_60000.png");
    write_png_claiming(label, 60000, 60000, PNG_COLOR_TYPE_GRAY);
    CHECK(read_bytes(label).size() < 100);
    std::string expected = label + " claims 60000x60000 = 3600000000 pixels, more than max_image_pixels=100000000; "
                           "raise max_image_pixels if the image is genuine";
    CHECK_THROWS_WITH_AS(load_label(label), contains("load_label: " + expected), Error);
    CHECK_THROWS_WITH_AS(load_rgb(label), contains("load_rgb: " + expected), Error);

    // 1e6 x 1e6 (the old loader ended in a bare std::bad_alloc naming no file)
    std::string rgb = dir.file("rgb_1e6.png");
    write_png_claiming(rgb, 1000000, 1000000, PNG_COLOR_TYPE_RGB);
    CHECK_THROWS_WITH_AS(load_rgb(rgb), contains(rgb + " claims 1000000x1000000 = 1000000000000 pixels"), Error);
    // as a label, its colour type is refused first, also before any allocation
    CHECK_THROWS_WITH_AS(load_label(rgb), contains("wrong channel count: " + rgb + " is a RGB PNG"), Error);

    // the limit is the caller's: a genuine 13x17 image passes at 221 pixels and is refused at 220
    std::string small = dir.file("small.png");
    save_png(small, gradient_image(13, 17));
    CHECK(load_rgb(small, 221).data == gradient_image(13, 17).data);
    CHECK_THROWS_WITH_AS(load_rgb(small, 220), contains(small + " claims 17x13 = 221 pixels, more than "
                                                        "max_image_pixels=220"), Error);
    LabelMap l(13, 17, 4);
    save_label_png(small, l);
    CHECK(load_label(small, 221).data == l.data);
    CHECK_THROWS_WITH_AS(load_label(small, 220), contains("max_image_pixels=220"), Error);
}

TEST_CASE("image limits: a JPEG claiming huge dimensions is refused before allocation") {
    TempDir dir("img_jpeg_limit");
    std::string huge = dir.file("huge.jpg");
    write_bytes(huge, jpeg_claiming(dir, 65000, 60000));
    CHECK_THROWS_WITH_AS(load_rgb(huge), contains("load_rgb: " + huge + " claims 65000x60000 = 3900000000 pixels, "
                                                  "more than max_image_pixels=100000000; raise max_image_pixels"),
                         Error);
    std::string fine = dir.file("fine.jpg");
    save_jpg(fine, gradient_image(10, 20));
    CHECK(load_rgb(fine, 200).w == 20);
    CHECK_THROWS_WITH_AS(load_rgb(fine, 199), contains(fine + " claims 20x10 = 200 pixels"), Error);
}

TEST_CASE("image limits: datasets and the run config pass max_image_pixels to the loaders") {
    TempDir dir("img_ds_limit");
    save_png(dir.file("images/a.png"), gradient_image(6, 8));
    save_label_png(dir.file("labels/a.png"), LabelMap(6, 8, 1));
    strata::testing::write_text_file(dir.file("train.txt"), "images/a.png labels/a.png\n");

    DatasetOptions config{"list", "train.txt", {{"data_root", dir.path.string()}, {"classes", 2}}};
    CHECK(open_dataset(config)->get(0).image.w == 8);
    config.config["max_image_pixels"] = 47;
    CHECK_THROWS_WITH_AS(open_dataset(config)->get(0),
                         contains(dir.file("images/a.png") + " claims 8x6 = 48 pixels, more than max_image_pixels=47"),
                         Error);

    // the same through the run config's key, as train and eval open their datasets
    pspnet::RunConfig c = pspnet::default_config();
    CHECK(c.data.max_image_pixels == kDefaultMaxImagePixels);
    c.data.format = "list";
    c.data.root = dir.path.string();
    c.data.train_split = "train.txt";
    c.model.classes = 2;
    c.data.max_image_pixels = 47;
    CHECK_THROWS_WITH_AS(pspnet::open_config_dataset(c, true)->get(0), contains("max_image_pixels=47"), Error);
    c.data.max_image_pixels = 48;
    CHECK(pspnet::open_config_dataset(c, true)->get(0).label.h == 6);

    // the formats with their own layout take the limit too
    CHECK_THROWS_WITH_AS(FileDataset("one", {FileEntry{"a", dir.file("images/a.png"), "", nullptr}},
                                     voc_classes(), 0),
                         contains("max_image_pixels must be at least 1"), Error);
}

TEST_CASE("image errors: a truncated or corrupt JPEG names the file and libjpeg's reason") {
    TempDir dir("img_jpeg_corrupt");
    std::string full = dir.file("full.jpg");
    save_jpg(full, photo_like(64, 64), 90);
    std::string bytes = read_bytes(full);

    std::string truncated = dir.file("truncated.jpg");
    write_bytes(truncated, bytes.substr(0, bytes.size() / 2));
    // the old message ended in "is not a readable image (" with no reason; a truncated JPEG must not decode to grey
    CHECK_THROWS_WITH_AS(load_rgb(truncated), contains("load_rgb: " + truncated + " is not a readable image "
                                                       "(libjpeg: Premature end of JPEG file)"), Error);

    std::string header_only = dir.file("header_only.jpg");
    write_bytes(header_only, bytes.substr(0, 20));
    CHECK_THROWS_WITH_AS(load_rgb(header_only), contains(header_only + " is not a readable image (libjpeg: "), Error);

    // a Huffman table whose code counts add up to more than 256 symbols (stb_image wrote past its table on these)
    std::string bad_huffman = bytes;
    size_t dht = bad_huffman.find("\xFF\xC4");
    REQUIRE(dht != std::string::npos);
    for (int i = 0; i < 16; ++i) bad_huffman[dht + 5 + size_t(i)] = char(0x40);
    std::string bad = dir.file("bad_huffman.jpg");
    write_bytes(bad, bad_huffman);
    CHECK_THROWS_WITH_AS(load_rgb(bad), contains(bad + " is not a readable image (libjpeg: Bogus Huffman table"),
                         Error);

    std::string empty = dir.file("empty.jpg");
    write_bytes(empty, "");
    CHECK_THROWS_WITH_AS(load_rgb(empty), contains(empty + " is not a readable image (the file is empty)"), Error);
}

TEST_CASE("image decoding: libjpeg and libpng give what stb_image gave (JPEG within 2 levels, PNG exactly)") {
    TempDir dir("img_parity");
    Image photo = photo_like(61, 83);  // odd sizes: partial MCUs and chroma subsampling at the edges
    for (int quality : {95, 75}) {     // stb_image_write subsamples chroma (4:2:0) at quality <= 90
        std::string path = dir.file("photo_" + std::to_string(quality) + ".jpg");
        save_jpg(path, photo, quality);
        Image ours = load_rgb(path), reference = stb_decode(path);
        REQUIRE(ours.h == reference.h);
        REQUIRE(ours.w == reference.w);
        int max_diff = 0;
        double total = 0;
        for (size_t i = 0; i < ours.data.size(); ++i) {
            int d = std::abs(int(ours.data[i]) - int(reference.data[i]));
            max_diff = std::max(max_diff, d);
            total += d;
        }
        INFO("quality " << quality << ": max difference " << max_diff);
        CHECK(max_diff <= 2);
        CHECK(total / double(ours.data.size()) < 0.5);
    }
    Image gray(9, 11, 1);
    for (size_t i = 0; i < gray.data.size(); ++i) gray.data[i] = uint8_t(i * 3);
    save_jpg(dir.file("gray.jpg"), gray);
    Image gray_ours = load_rgb(dir.file("gray.jpg")), gray_reference = stb_decode(dir.file("gray.jpg"));
    for (size_t i = 0; i < gray_ours.data.size(); ++i)
        CHECK(std::abs(int(gray_ours.data[i]) - int(gray_reference.data[i])) <= 1);

    // PNG: RGB, grayscale, palette, RGBA and 16-bit files decode to exactly stb_image's pixels
    save_png(dir.file("rgb.png"), photo);
    save_png(dir.file("gray.png"), gray);
    Image rgba(7, 5, 4);
    for (size_t i = 0; i < rgba.data.size(); ++i) rgba.data[i] = uint8_t(i * 11);
    save_png(dir.file("rgba.png"), rgba);
    save_palette_png(dir.file("palette.png"), strata::testing::block_labels(9, 10, {0, 5, 15, 255}, 2));
    LabelMap wide(5, 6);
    for (size_t i = 0; i < wide.data.size(); ++i) wide.data[i] = int32_t(i * 2111);
    save_label_png(dir.file("gray16.png"), wide, 16);
    for (const char* name : {"rgb.png", "gray.png", "rgba.png", "palette.png", "gray16.png"}) {
        INFO(name);
        CHECK(load_rgb(dir.file(name)).data == stb_decode(dir.file(name)).data);
    }
}

TEST_CASE("image decoding: CMYK JPEGs (Adobe, inverted) become RGB") {
    TempDir dir("img_cmyk");
    // inverted CMYK (255 = no ink): C=255, M=128, Y=0 at K=255 (no black) is the colour (255, 128, 0); at K=128
    // every channel is halved
    const uint8_t orange[4] = {255, 128, 0, 255}, dark[4] = {255, 128, 0, 128};
    write_cmyk_jpeg(dir.file("orange.jpg"), 16, 16, orange);
    write_cmyk_jpeg(dir.file("dark.jpg"), 16, 16, dark);
    Image a = load_rgb(dir.file("orange.jpg")), b = load_rgb(dir.file("dark.jpg"));
    REQUIRE(a.c == 3);
    for (int ch = 0; ch < 3; ++ch) {
        int expected_a[3] = {255, 128, 0}, expected_b[3] = {128, 64, 0};
        CHECK(std::abs(int(a.pixel(7, 7)[ch]) - expected_a[ch]) <= 2);
        CHECK(std::abs(int(b.pixel(7, 7)[ch]) - expected_b[ch]) <= 2);
    }
}
