// Image and label files: round trips, the PNG variants labels come in, the VOC colour map, and the errors.
#include <doctest/doctest.h>
#include <png.h>

#include <cstdio>
#include <cstdlib>

#include "data/image.h"
#include "framework/check.h"
#include "tests/data/data_test_util.h"

using namespace strata;
using strata::testing::TempDir;
using strata::testing::contains;

namespace {

// Writes a PNG through libpng directly, for variants that save_* do not produce (bit depths below 8, interlacing,
// colour labels). `values` holds one sample per entry, row by row; samples are packed to `bit_depth` here.
void write_png_variant(const std::string& path, int h, int w, int color_type, int bit_depth, bool interlaced,
                       const std::vector<int>& values) {
    int channels = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                   : color_type == PNG_COLOR_TYPE_GRAY_ALPHA                                  ? 2
                                                                                              : 1;
    size_t samples_per_row = size_t(w) * size_t(channels);
    size_t row_bytes = (samples_per_row * size_t(bit_depth) + 7) / 8;
    std::vector<uint8_t> bytes(row_bytes * size_t(h), 0);
    for (int y = 0; y < h; ++y)
        for (size_t s = 0; s < samples_per_row; ++s) {
            int v = values[size_t(y) * samples_per_row + s];
            uint8_t* row = &bytes[size_t(y) * row_bytes];
            if (bit_depth == 16) {
                row[2 * s] = uint8_t(v >> 8);
                row[2 * s + 1] = uint8_t(v);
            } else {  // most significant bits first
                size_t bit = s * size_t(bit_depth);
                row[bit / 8] |= uint8_t(v << (8 - bit_depth - int(bit % 8)));
            }
        }
    std::vector<png_bytep> rows;
    for (int y = 0; y < h; ++y) rows.push_back(&bytes[size_t(y) * row_bytes]);
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), bit_depth, color_type,
                 interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color palette[16];
        for (int i = 0; i < 16; ++i) palette[i] = png_color{uint8_t(i * 16), uint8_t(255 - i * 16), 7};
        png_set_PLTE(png, info, palette, 1 << std::min(bit_depth, 4));
    }
    png_write_info(png, info);
    if (interlaced) png_set_interlace_handling(png);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
}

}  // namespace

TEST_CASE("image: the VOC colour map follows the bit-interleaving rule") {
    CHECK(voc_color(0) == Rgb{0, 0, 0});
    CHECK(voc_color(1) == Rgb{128, 0, 0});
    CHECK(voc_color(2) == Rgb{0, 128, 0});
    CHECK(voc_color(7) == Rgb{128, 128, 128});
    CHECK(voc_color(8) == Rgb{64, 0, 0});
    CHECK(voc_color(15) == Rgb{192, 128, 128});
    CHECK(voc_color(20) == Rgb{0, 64, 128});
    CHECK(voc_color(255) == Rgb{224, 224, 192});
    std::vector<Rgb> palette = voc_palette();
    REQUIRE(palette.size() == 256);
    CHECK(palette[10] == Rgb{64, 128, 0});
}

TEST_CASE("image: RGB PNG round trip is exact, JPEG is close, grayscale photos become 3 channels") {
    TempDir dir("image_rgb");
    Image image = strata::testing::gradient_image(13, 17);
    save_png(dir.file("a.png"), image);
    Image back = load_rgb(dir.file("a.png"));
    CHECK(back.h == 13);
    CHECK(back.w == 17);
    CHECK(back.c == 3);
    CHECK(back.data == image.data);

    Image smooth(16, 24, 3);
    for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 24; ++x)
            for (int ch = 0; ch < 3; ++ch) smooth.pixel(y, x)[ch] = uint8_t(60 + 4 * x + 2 * y + 20 * ch);
    save_jpg(dir.file("a.jpg"), smooth, 95);
    Image jpg = load_rgb(dir.file("a.jpg"));
    REQUIRE(jpg.data.size() == smooth.data.size());
    double total_error = 0;
    for (size_t i = 0; i < jpg.data.size(); ++i) total_error += std::abs(int(jpg.data[i]) - int(smooth.data[i]));
    CHECK(total_error / double(jpg.data.size()) < 3.0);

    Image gray(9, 11, 1);
    for (size_t i = 0; i < gray.data.size(); ++i) gray.data[i] = uint8_t(i * 3);
    save_png(dir.file("gray.png"), gray);
    save_jpg(dir.file("gray.jpg"), gray);
    for (const char* name : {"gray.png", "gray.jpg"}) {
        Image rgb = load_rgb(dir.file(name));
        CHECK(rgb.c == 3);
        CHECK(rgb.h == 9);
        for (int i = 0; i < rgb.h * rgb.w; ++i) {
            CHECK(rgb.data[size_t(3 * i)] == rgb.data[size_t(3 * i + 1)]);
            CHECK(rgb.data[size_t(3 * i)] == rgb.data[size_t(3 * i + 2)]);
        }
    }
    CHECK(load_rgb(dir.file("gray.png")).data[3 * 5] == 15);
}

TEST_CASE("image: palette labels are read by index, not colour, and 255 survives") {
    TempDir dir("image_palette");
    LabelMap label = strata::testing::block_labels(10, 12, {0, 5, 15, 255, 20}, 3);
    save_palette_png(dir.file("voc.png"), label);
    LabelMap back = load_label(dir.file("voc.png"));
    CHECK(back.h == 10);
    CHECK(back.w == 12);
    CHECK(back.data == label.data);
    // The same file decoded as a photo shows the palette's colours: index 15 is (192, 128, 128).
    Image shown = load_rgb(dir.file("voc.png"));
    int y = 0, x = 6;  // block (2, 0) -> value index 2 -> 15
    REQUIRE(label.at(y, x) == 15);
    CHECK(shown.pixel(y, x)[0] == 192);
    CHECK(shown.pixel(y, x)[1] == 128);
    CHECK(shown.pixel(y, x)[2] == 128);

    // a custom palette: the indices are still what comes back
    std::vector<Rgb> custom = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}};
    LabelMap small = strata::testing::block_labels(5, 5, {0, 1, 2, 255}, 1);
    save_palette_png(dir.file("custom.png"), small, custom);
    CHECK(load_label(dir.file("custom.png")).data == small.data);
    CHECK(load_rgb(dir.file("custom.png")).pixel(0, 1)[0] == 40);
}

TEST_CASE("image: grayscale labels in 8 and 16 bits, low bit depths and interlaced files") {
    TempDir dir("image_gray");
    LabelMap label = strata::testing::block_labels(7, 9, {0, 1, 18, 255}, 2);
    save_label_png(dir.file("l8.png"), label);
    CHECK(load_label(dir.file("l8.png")).data == label.data);

    // Cityscapes instanceIds: labelId * 1000 + instance, in 16 bits
    LabelMap instances = strata::testing::block_labels(6, 8, {7, 26001, 26002, 33000, 65535}, 2);
    save_label_png(dir.file("l16.png"), instances, 16);
    CHECK(load_label(dir.file("l16.png")).data == instances.data);

    // a 4-bit palette PNG and a 2-bit grayscale one: values are unpacked, not rescaled
    std::vector<int> values4, values2;
    for (int i = 0; i < 5 * 7; ++i) {
        values4.push_back(i % 13);
        values2.push_back(i % 4);
    }
    write_png_variant(dir.file("p4.png"), 5, 7, PNG_COLOR_TYPE_PALETTE, 4, false, values4);
    write_png_variant(dir.file("g2.png"), 5, 7, PNG_COLOR_TYPE_GRAY, 2, false, values2);
    LabelMap p4 = load_label(dir.file("p4.png")), g2 = load_label(dir.file("g2.png"));
    for (int i = 0; i < 5 * 7; ++i) {
        CHECK(p4.data[size_t(i)] == values4[size_t(i)]);
        CHECK(g2.data[size_t(i)] == values2[size_t(i)]);
    }

    // Adam7-interlaced 8-bit grayscale
    std::vector<int> values8;
    for (int i = 0; i < 11 * 10; ++i) values8.push_back((i * 37) % 256);
    write_png_variant(dir.file("interlaced.png"), 11, 10, PNG_COLOR_TYPE_GRAY, 8, true, values8);
    LabelMap interlaced = load_label(dir.file("interlaced.png"));
    REQUIRE(interlaced.data.size() == values8.size());
    for (size_t i = 0; i < values8.size(); ++i) CHECK(interlaced.data[i] == values8[i]);
}

TEST_CASE("image: colorize uses the palette, and VOC colours past its end") {
    LabelMap label(1, 3);
    label.data = {0, 1, 255};
    Image c = colorize(label, {{1, 2, 3}, {4, 5, 6}});
    CHECK(c.pixel(0, 0)[2] == 3);
    CHECK(c.pixel(0, 1)[0] == 4);
    CHECK(c.pixel(0, 2)[0] == 224);
}

TEST_CASE("image: errors name the file and what is wrong") {
    TempDir dir("image_errors");
    std::string missing = dir.file("nope.png");
    CHECK_THROWS_WITH_AS(load_rgb(missing), contains("file not found: " + missing), Error);
    CHECK_THROWS_WITH_AS(load_label(missing), contains("file not found: " + missing), Error);

    std::string text = dir.file("text.png");
    strata::testing::write_text_file(text, "this is not an image at all");
    CHECK_THROWS_WITH_AS(load_rgb(text), contains(text + " is not a readable image"), Error);
    CHECK_THROWS_WITH_AS(load_label(text), contains(text + " is not a PNG file"), Error);

    std::string jpg = dir.file("label.jpg");
    save_jpg(jpg, strata::testing::gradient_image(8, 8));
    CHECK_THROWS_WITH_AS(load_label(jpg), contains(jpg + " is a JPEG"), Error);

    std::string rgb = dir.file("rgb.png");
    save_png(rgb, strata::testing::gradient_image(8, 8));
    CHECK_THROWS_WITH_AS(load_label(rgb), contains("wrong channel count: " + rgb + " is a RGB PNG with 3"),
                         Error);
    std::vector<int> gray_alpha(2 * 4 * 4, 9);
    write_png_variant(dir.file("ga.png"), 4, 4, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, gray_alpha);
    CHECK_THROWS_WITH_AS(load_label(dir.file("ga.png")), contains("grayscale+alpha PNG with 2 channels"),
                         Error);

    // a truncated PNG: the signature is right, the rest is cut off
    LabelMap label(20, 20, 3);
    save_label_png(dir.file("full.png"), label);
    std::string truncated = dir.file("truncated.png");
    {
        std::ifstream in(dir.file("full.png"), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        strata::testing::write_text_file(truncated, bytes.substr(0, 40));
    }
    CHECK_THROWS_WITH_AS(load_label(truncated), contains(truncated + " is not a readable PNG"), Error);

    LabelMap big(2, 2, 300);
    CHECK_THROWS_WITH_AS(save_palette_png(dir.file("big.png"), big), contains("label value 300 does not fit"),
                         Error);
    std::string nowhere = (dir.path / "no" / "such" / "x.png").string();
    CHECK_THROWS_WITH_AS(save_png(nowhere, strata::testing::gradient_image(2, 2)),
                         contains("save_png: cannot open " + nowhere + ": No such file"), Error);
}
