// Prediction without full-size score maps (models/pspnet/evaluate.h): the band-wise labels against semseg's
// full-size average computed here with tensors, the refusal of degenerate protocol parameters, and the up-front
// memory refusal.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "data/transforms.h"
#include "framework/check.h"
#include "framework/random.h"
#include "layers/add.h"
#include "layers/mul.h"
#include "layers/upsample_bilinear2d.h"
#include "models/pspnet/evaluate.h"
#include "tests/models/tiny_model.h"

using namespace strata;
using namespace strata::pspnet;

using strata::testing::random_image;
using strata::testing::tiny_eval_model;

namespace {

ScoreMap random_scores(int64_t classes, int h, int w, Generator& g) {
    ScoreMap m;
    m.classes = classes;
    m.h = h;
    m.w = w;
    m.data.resize(size_t(classes * h * w));
    for (auto& v : m.data) v = float(g.randint(1 << 20)) / float(1 << 20);
    return m;
}

// The path before band-wise labels: every map resized to h x w as a tensor, summed, scaled by 1 / n, argmax.
LabelMap full_size_labels(const std::vector<ScoreMap>& scores, int h, int w) {
    Tensor total;
    for (const ScoreMap& m : scores) {
        Tensor p = from_vector(m.data, {1, m.classes, m.h, m.w});
        if (m.h != h || m.w != w) p = upsample_bilinear2d(p, Size2(h, w), false);
        total = total.defined() ? total + p : p;
    }
    return argmax_labels((total * float(1.0 / double(scores.size()))).reshape({total.size(1), h, w}));
}

// The message of the Error that fn throws ("" when it throws none).
template <typename Fn>
std::string error_of(Fn fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Two labelled noise images that count how often they are read.
struct CountingDataset : Dataset {
    mutable int reads = 0;
    int64_t size() const override { return 2; }
    Sample get(int64_t index) const override {
        ++reads;
        Sample s;
        s.name = "noise" + std::to_string(index);
        s.image = random_image(20, 24, uint64_t(index));
        s.label = LabelMap(20, 24);
        return s;
    }
    std::string name(int64_t index) const override { return "noise" + std::to_string(index); }
    bool has_labels() const override { return true; }
    std::string description() const override { return "noise (2 images)"; }
};

}  // namespace

TEST_CASE("predict: band-wise labels equal the argmax of the full-size average of the resized score maps") {
    Generator g(17);
    struct Case {
        int h, w;
        std::vector<std::pair<int, int>> maps;  // the size of each scale's scores
    };
    std::vector<Case> cases = {
        {37, 53, {{37, 53}}},                                     // one map at the output size: no resize
        {37, 53, {{19, 27}}},                                     // upsampled
        {37, 53, {{60, 85}}},                                     // downsampled
        {41, 29, {{21, 15}, {41, 29}, {62, 44}, {72, 51}}},       // multi-scale: below, equal, above
        {1, 50, {{1, 25}, {3, 100}}},                             // one output row
        {64, 3, {{128, 1}, {5, 7}}},                              // one source column, odd ratios
    };
    for (const Case& c : cases) {
        std::vector<ScoreMap> scores;
        for (auto [mh, mw] : c.maps) scores.push_back(random_scores(5, mh, mw, g));
        LabelMap expected = full_size_labels(scores, c.h, c.w);
        for (int band : {0, 1, 4, 7, c.h}) {
            CAPTURE(c.h);
            CAPTURE(c.w);
            CAPTURE(band);
            LabelMap got = labels_from_scores(scores, c.h, c.w, band);
            REQUIRE(got.h == c.h);
            REQUIRE(got.w == c.w);
            CHECK(got.data == expected.data);
        }
    }
    // Ties go to the lowest class, as argmax_labels does.
    ScoreMap flat;
    flat.classes = 3;
    flat.h = 2;
    flat.w = 2;
    flat.data.assign(12, 0.25f);
    LabelMap tie = labels_from_scores({flat}, 5, 3);
    CHECK(tie.data == std::vector<int32_t>(15, 0));
    ScoreMap broken = flat;
    broken.data.resize(11);
    CHECK_THROWS_WITH_AS(labels_from_scores({flat, broken}, 5, 3), doctest::Contains("holding 11 floats"), Error);
}

TEST_CASE("predict: predict_labels equals the argmax of the full-size probabilities in every mode") {
    PSPNet model = tiny_eval_model(5);
    Image im = random_image(31, 46, 9);
    std::vector<EvalOptions> protocols;
    EvalOptions o;
    protocols.push_back(o);                    // whole, one scale: the map is already full size
    o.scales = {0.5, 1.0, 1.25};
    o.flip = true;
    protocols.push_back(o);                    // whole, multi-scale with flip
    o.mode = "slide";
    o.crop_h = o.crop_w = 17;
    o.base_size = 60;
    protocols.push_back(o);                    // slide at base_size: maps at 40x60 .. 50x75
    o.base_size = 0;
    o.scales = {1.0};
    o.flip = false;
    protocols.push_back(o);                    // slide at the image's own size
    o.crop_h = 65;
    o.crop_w = 33;
    o.base_size = 20;
    protocols.push_back(o);                    // one padded window, a map smaller than the image
    for (const EvalOptions& p : protocols) {
        CAPTURE(p.mode);
        CAPTURE(p.base_size);
        CAPTURE(p.scales.size());
        CHECK(predict_labels(model, im, p).data == argmax_labels(predict_probabilities(model, im, p)).data);
    }
}

TEST_CASE("predict: a slide-mode scale's scores stay at base_size, not at the image's size") {
    // The structure that keeps large images cheap: what predict_labels holds per scale is sized by base_size.
    PSPNet model = tiny_eval_model(5);
    Image im = random_image(90, 120, 4);
    EvalOptions o;
    o.mode = "slide";
    o.crop_h = o.crop_w = 17;
    o.base_size = 40;
    ScoreMap m = predict_scale(model, im, o, 1.0);
    CHECK(m.classes == 4);
    CHECK(m.h == 30);
    CHECK(m.w == 40);
    CHECK(m.data.size() == size_t(4 * 30 * 40));
    Size2 p = processing_size(90, 120, o, 0.5);
    CHECK(p.h == 15);
    CHECK(p.w == 20);
}

TEST_CASE("predict: resizing an 8-bit image equals resizing its float copy") {
    Image im = random_image(23, 31, 2);
    for (auto [h, w] : std::vector<std::pair<int, int>>{{11, 16}, {40, 57}, {23, 31}, {1, 1}}) {
        ImageF a = resize_bilinear(im, h, w), b = resize_bilinear(to_float(im), h, w);
        CHECK(a.data == b.data);
    }
}

TEST_CASE("predict: degenerate protocol parameters are refused, naming the parameter") {
    PSPNet model = tiny_eval_model(5);
    Image im = random_image(20, 24, 3);
    EvalOptions slide;
    slide.mode = "slide";
    slide.crop_h = slide.crop_w = 17;
    slide.base_size = 40;
    struct Bad {
        EvalOptions options;
        const char* says;
    };
    std::vector<Bad> bad;
    for (int crop : {0, -5, 1, 9, 16}) {
        EvalOptions o = slide;
        o.crop_h = crop;
        bad.push_back({o, "test_h="});
        o = slide;
        o.crop_w = crop;
        bad.push_back({o, "test_w="});
    }
    for (int base : {-1, 1, 16}) {
        EvalOptions o = slide;
        o.base_size = base;
        bad.push_back({o, "base_size="});
    }
    for (double s : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
        EvalOptions o = slide;
        o.scales = {1.0, s};
        bad.push_back({o, "in scales"});
    }
    EvalOptions none = slide;
    none.scales.clear();
    bad.push_back({none, "scales must list at least one scale"});
    EvalOptions mode = slide;
    mode.mode = "tiles";
    bad.push_back({mode, "eval_mode must be"});
    for (const Bad& b : bad) {
        CAPTURE(b.says);
        CAPTURE(b.options.crop_h);
        CAPTURE(b.options.crop_w);
        CAPTURE(b.options.base_size);
        CHECK_THROWS_WITH_AS(predict_labels(model, im, b.options), doctest::Contains(b.says), Error);
        CHECK_THROWS_WITH_AS(predict_probabilities(model, im, b.options), doctest::Contains(b.says), Error);
    }
    // The smallest accepted sizes run; whole mode does not look at the slide parameters.
    EvalOptions edge = slide;
    edge.base_size = 17;
    CHECK(predict_labels(model, im, edge).h == 20);
    EvalOptions whole;
    whole.crop_h = 0;
    whole.base_size = -1;
    CHECK(predict_labels(model, im, whole).w == 24);
    // evaluate_dataset refuses them before reading the first image; good ones evaluate every image.
    CountingDataset data;
    CHECK_THROWS_WITH_AS(evaluate_dataset(model, data, bad.front().options, 0, 255, nullptr),
                         doctest::Contains("test_h=0"), Error);
    CHECK(data.reads == 0);
    evaluate_dataset(model, data, slide, 0, 255, nullptr);
    CHECK(data.reads == 2);
    // Through predict_labels_of the message starts with the image's name and size.
    std::string named = error_of([&] { predict_labels_of(model, im, bad.front().options, "street.jpg"); });
    CHECK(named.rfind("street.jpg: ", 0) == 0);
    CHECK(named.find("test_h=0") != std::string::npos);
}

TEST_CASE("predict: an image whose prediction would not fit is refused up front with the size and the fix") {
    PSPNet model = tiny_eval_model(5);
    Image im = random_image(200, 300, 6);
    EvalOptions whole;
    EvalOptions slide;
    slide.mode = "slide";
    slide.crop_h = slide.crop_w = 33;
    slide.base_size = 64;
    int64_t whole_bytes = estimate_prediction_bytes(model, 200, 300, whole);
    int64_t slide_bytes = estimate_prediction_bytes(model, 200, 300, slide);
    REQUIRE(slide_bytes < whole_bytes);
    // A limit between the two: whole mode is refused before any forward pass, slide mode runs.
    whole.memory_limit_bytes = slide.memory_limit_bytes = (whole_bytes + slide_bytes) / 2;
    CHECK_THROWS_WITH_AS(predict_labels(model, im, whole), doctest::Contains("300x200 image"), Error);
    CHECK_THROWS_WITH_AS(predict_labels(model, im, whole), doctest::Contains("needs an estimated"), Error);
    CHECK_THROWS_WITH_AS(predict_labels(model, im, whole), doctest::Contains("eval_mode=slide"), Error);
    std::string named = error_of([&] { predict_labels_of(model, im, whole, "big.png"); });
    CHECK(named.rfind("big.png: ", 0) == 0);
    CHECK(named.find("eval_mode=slide") != std::string::npos);
    CHECK(predict_labels(model, im, slide).h == 200);
    // Slide mode at the image's own size (base_size 0) needs full-size window sums: refused, pointing at base_size.
    EvalOptions keep = slide;
    keep.base_size = 0;
    keep.memory_limit_bytes = estimate_prediction_bytes(model, 200, 300, keep) - 1;
    CHECK_THROWS_WITH_AS(predict_labels(model, im, keep), doctest::Contains("set base_size"), Error);
    keep.base_size = 64;
    keep.memory_limit_bytes = 1;
    CHECK_THROWS_WITH_AS(predict_labels(model, im, keep), doctest::Contains("smaller base_size (now 64)"), Error);
}

TEST_CASE("predict: an allocation that fails anyway is rethrown naming the image and what to change") {
    // Scale 1e7 of a 2x2 image asks for a 20000000 x 20000000 float image (4.8 PB, beyond any address space, so
    // the allocation fails at once whatever the kernel's overcommit policy); the limit is lifted to get there.
    PSPNet model = tiny_eval_model(5);
    Image im = random_image(2, 2, 8);
    EvalOptions o;
    o.scales = {1e7};
    o.memory_limit_bytes = std::numeric_limits<int64_t>::max();
    std::string message = error_of([&] { predict_labels_of(model, im, o, "tiny.png"); });
    CHECK(message.rfind("tiny.png: out of memory predicting this 2x2 image (width x height) in whole mode", 0) == 0);
    CHECK(message.find("eval_mode=slide") != std::string::npos);
}

TEST_CASE("predict: the forward-pass estimate grows with the pixels and the batch") {
    PSPNet model = tiny_eval_model(5);
    int64_t one = estimate_forward_bytes(model, 1, 100, 100);
    CHECK(one > 0);
    CHECK(estimate_forward_bytes(model, 1, 200, 200) == doctest::Approx(4.0 * double(one)).epsilon(0.01));
    CHECK(estimate_forward_bytes(model, 2, 100, 100) > one);
    // At least the logits, their copy and the probabilities: 3 x classes floats per pixel.
    CHECK(one >= 4 * 3 * 4 * 100 * 100);
    CHECK(available_memory_bytes() > 0);
    // On a GPU the forward pass's memory is the device's: the host estimate leaves it out.
    EvalOptions cpu, gpu;
    gpu.device = Device{DeviceType::CUDA, 0};
    CHECK(estimate_prediction_bytes(model, 400, 400, gpu) < estimate_prediction_bytes(model, 400, 400, cpu));
}
