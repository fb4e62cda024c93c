// The augmentation pipeline: each primitive on a case checkable by hand, then the invariants of the whole chain
// (labels stay in the label set, padding is 255 with the mean colour, image and label stay aligned) and determinism.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "data/transforms.h"
#include "framework/check.h"
#include "tests/data/data_test_util.h"

using namespace strata;
using strata::testing::block_labels;

namespace {

// Colours far apart, one per class, so that a pixel's class can be read back from its colour.
const std::vector<Rgb> kClassColors = {{220, 30, 30}, {30, 220, 30}, {30, 30, 220}, {220, 220, 30}};

// An image whose colour encodes its label: label blocks of 8 pixels in 4 classes, coloured kClassColors.
Sample colour_coded_sample(int h, int w) {
    Sample s;
    s.name = "coded";
    s.label = block_labels(h, w, {0, 1, 2, 3}, 8);
    s.image = colorize(s.label, kClassColors);
    return s;
}

// The RGB value of output pixel i, undoing Normalize.
Rgbf denormalize(const TransformedSample& t, size_t i, const TransformConfig& c) {
    size_t plane = size_t(t.h) * size_t(t.w);
    Rgbf v;
    for (size_t ch = 0; ch < 3; ++ch) v[ch] = t.image[ch * plane + i] * 255.0f * c.std[ch] + 255.0f * c.mean[ch];
    return v;
}

int nearest_class(const Rgbf& v) {
    int best = -1;
    float best_d = 1e30f;
    for (size_t k = 0; k < kClassColors.size(); ++k) {
        float d = 0;
        for (size_t ch = 0; ch < 3; ++ch) d += (v[ch] - kClassColors[k][ch]) * (v[ch] - kClassColors[k][ch]);
        if (d < best_d) best_d = d, best = int(k);
    }
    return best;
}

// True when the window of `radius` around (y, x) lies inside the output and all its labels equal `value`. (Near
// the output's edge the window is incomplete: a label edge just outside the crop may have been blurred into it.)
bool uniform_around(const TransformedSample& t, int y, int x, int radius, int32_t value) {
    if (y < radius || x < radius || y + radius >= t.h || x + radius >= t.w) return false;
    for (int j = y - radius; j <= y + radius; ++j)
        for (int i = x - radius; i <= x + radius; ++i)
            if (t.label[size_t(j) * size_t(t.w) + size_t(i)] != value) return false;
    return true;
}

}  // namespace

TEST_CASE("transforms: nearest resize moves labels, bilinear resize interpolates the image") {
    LabelMap l(2, 3);
    l.data = {1, 2, 3, 4, 5, 6};
    LabelMap up = resize_nearest(l, 4, 6);
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 6; ++x) CHECK(up.at(y, x) == l.at(y / 2, x / 2));
    LabelMap big(4, 4);
    for (int i = 0; i < 16; ++i) big.data[size_t(i)] = i;
    LabelMap down = resize_nearest(big, 2, 2);  // the pixel under each output centre: rows/cols 1 and 3
    CHECK(down.data == std::vector<int32_t>{5, 7, 13, 15});

    // a horizontal ramp 0, 10, 20, 30 upsampled 2x: centres at source x = -0.25, 0.25, 0.75, ..., clamped at the ends
    ImageF ramp(1, 4, 3);
    for (int x = 0; x < 4; ++x)
        for (int ch = 0; ch < 3; ++ch) ramp.pixel(0, x)[ch] = float(10 * x);
    ImageF r2 = resize_bilinear(ramp, 1, 8);
    std::vector<float> expected = {0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30};
    for (int x = 0; x < 8; ++x) CHECK(r2.pixel(0, x)[1] == doctest::Approx(expected[size_t(x)]));
}

TEST_CASE("transforms: rotation follows OpenCV's convention (centre w/2, h/2; positive = counter-clockwise)") {
    ImageF image(5, 5, 3, 100.0f);
    LabelMap label(5, 5);
    for (int i = 0; i < 25; ++i) label.data[size_t(i)] = i;
    LabelMap same = label;
    ImageF copy = image;
    rotate(copy, same, 0.0f, {1, 2, 3});
    CHECK(same.data == label.data);
    CHECK(copy.data == image.data);

    // 90 degrees about (2.5, 2.5): output (x, y) pulls source (5 - y, x); row 0 pulls column 5, outside the image
    LabelMap rotated = label;
    ImageF rotated_image = image;
    rotate(rotated_image, rotated, 90.0f, {1, 2, 3});
    for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 5; ++x) {
            int32_t want = y == 0 ? 255 : label.at(x, 5 - y);
            CHECK(rotated.at(y, x) == want);
        }
    CHECK(rotated_image.pixel(0, 2)[0] == doctest::Approx(1.0f));  // outside: the border colour
    CHECK(rotated_image.pixel(3, 2)[2] == doctest::Approx(100.0f));
}

TEST_CASE("transforms: the 5x5 Gaussian has sigma 1.1, sums to one, and mirrors at the edges") {
    ImageF impulse(9, 9, 3, 0.0f);
    for (int ch = 0; ch < 3; ++ch) impulse.pixel(4, 4)[ch] = 1.0f;
    gaussian_blur(impulse, 5, 1.1f);
    double k[5], total = 0;
    for (int i = 0; i < 5; ++i) total += k[i] = std::exp(-double((i - 2) * (i - 2)) / (2 * 1.1 * 1.1));
    for (double& v : k) v /= total;
    CHECK(impulse.pixel(4, 4)[0] == doctest::Approx(k[2] * k[2]));
    CHECK(impulse.pixel(3, 5)[1] == doctest::Approx(k[1] * k[3]));
    CHECK(impulse.pixel(4, 1)[0] == 0.0f);
    float sum = 0;
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 9; ++x) sum += impulse.pixel(y, x)[2];
    CHECK(sum == doctest::Approx(1.0f));

    ImageF flat(4, 3, 3, 77.0f);  // a constant image stays constant, edges included
    gaussian_blur(flat, 5, 1.1f);
    for (float v : flat.data) CHECK(v == doctest::Approx(77.0f));
}

TEST_CASE("transforms: padding is symmetric like semseg's, 255 in the label and the border colour in the image") {
    ImageF image(3, 4, 3, 9.0f);
    LabelMap label(3, 4, 1);
    pad_to(image, label, 8, 7, {1, 2, 3});
    REQUIRE(image.h == 8);
    REQUIRE(image.w == 7);
    // pad_h = 5: 2 rows before, 3 after; pad_w = 3: 1 column before, 2 after
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 7; ++x) {
            bool inside = y >= 2 && y < 5 && x >= 1 && x < 5;
            CHECK(label.at(y, x) == (inside ? 1 : 255));
            CHECK(image.pixel(y, x)[2] == (inside ? 9.0f : 3.0f));
        }
    crop(image, label, 2, 1, 3, 4);
    CHECK(label.data == LabelMap(3, 4, 1).data);
    CHECK_THROWS_WITH_AS(crop(image, label, 1, 0, 3, 4), doctest::Contains("does not fit"), Error);

    // through the pipeline: scale fixed at 0.5 makes a 40x52 image 20x26, padded to the 48x48 centre crop
    Sample s = colour_coded_sample(40, 52);
    TransformConfig c = eval_transforms(48, 48);
    c.scale_min = c.scale_max = 0.5f;
    Generator gen(3);
    TransformedSample t = transform_sample(s, c, gen);
    REQUIRE(t.h == 48);
    for (int y = 0; y < 48; ++y)
        for (int x = 0; x < 48; ++x) {
            size_t i = size_t(y) * 48 + size_t(x);
            bool inside = y >= 14 && y < 34 && x >= 11 && x < 37;
            CHECK((t.label[i] == 255) == !inside);
            if (!inside) CHECK(t.image[i] == doctest::Approx(0.0f).epsilon(1e-5));  // the mean: 0 once normalised
        }
}

TEST_CASE("transforms: after the full training chain, labels stay in the label set and match the image") {
    // The image's colour encodes its label. After scale, rotation, blur, flip and crop, every pixel away from a
    // label edge must still have its label's colour, and every pixel deep in an ignore region the mean colour.
    Sample s = colour_coded_sample(40, 52);
    TransformConfig c = train_transforms(48, 48);
    std::set<int32_t> allowed = {0, 1, 2, 3, 255};
    int64_t checked_class = 0, checked_border = 0;
    for (uint64_t seed = 0; seed < 40; ++seed) {
        Generator gen(seed);
        TransformedSample t = transform_sample(s, c, gen);
        REQUIRE(t.h == 48);
        REQUIRE(t.w == 48);
        for (int y = 0; y < t.h; ++y)
            for (int x = 0; x < t.w; ++x) {
                size_t i = size_t(y) * size_t(t.w) + size_t(x);
                int32_t l = t.label[i];
                REQUIRE(allowed.count(l) == 1);
                // blur reaches 2 pixels, bilinear sampling 1 more: beyond 3 pixels from any edge the colour is pure
                if (!uniform_around(t, y, x, 3, l)) continue;
                Rgbf v = denormalize(t, i, c);
                if (l == 255) {
                    for (size_t ch = 0; ch < 3; ++ch)
                        CHECK(v[ch] == doctest::Approx(255.0f * c.mean[ch]).epsilon(1e-3));
                    ++checked_border;
                } else {
                    CHECK(nearest_class(v) == l);
                    ++checked_class;
                }
            }
    }
    CHECK(checked_class > 10000);  // a good part of the 40 x 42 x 42 inner pixels were checked
    CHECK(checked_border > 100);   // and some padding / rotation corners
}

TEST_CASE("transforms: the same seed gives the same sample, another seed another") {
    Sample s = colour_coded_sample(30, 34);
    TransformConfig c = train_transforms(25, 25);
    Generator a(11), b(11), other(12);
    TransformedSample ta = transform_sample(s, c, a), tb = transform_sample(s, c, b);
    TransformedSample to = transform_sample(s, c, other);
    CHECK(ta.image == tb.image);
    CHECK(ta.label == tb.label);
    CHECK(a.counter() == b.counter());
    CHECK(ta.image != to.image);
}

TEST_CASE("transforms: evaluation transforms only normalise; a sample without a label gets 255") {
    Sample s = colour_coded_sample(9, 11);
    TransformConfig c = eval_transforms();
    Generator gen(0);
    TransformedSample t = transform_sample(s, c, gen);
    REQUIRE(t.h == 9);
    REQUIRE(t.w == 11);
    CHECK(t.label == s.label.data);
    // (x - 255 mean) / (255 std) for the red channel of pixel 0
    CHECK(t.image[0] == doctest::Approx((220.0f - 255.0f * 0.485f) / (255.0f * 0.229f)));
    s.label = LabelMap();
    t = transform_sample(s, c, gen);
    for (int32_t l : t.label) CHECK(l == 255);

    TransformConfig bad = eval_transforms(0, 5);
    CHECK_THROWS_WITH_AS(transform_sample(s, bad, gen), doctest::Contains("crop_h and crop_w must both be positive"),
                         Error);
}
