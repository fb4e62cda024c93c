// Segmentation metrics against confusion matrices worked out by hand, and the evaluation protocol's invariants.
#include <doctest/doctest.h>

#include "framework/check.h"
#include "framework/random.h"
#include "models/pspnet/evaluate.h"
#include "tests/models/tiny_model.h"
#include "models/pspnet/metrics.h"

using namespace strata;
using namespace strata::pspnet;

TEST_CASE("metrics: IoU, accuracy, mIoU, mAcc and allAcc from a hand-computed confusion matrix") {
    // 3 classes. label/pred pairs (255 = ignored, whatever the prediction):
    //   label 0: pred 0, 0, 1        label 1: pred 1, 1, 1, 2      label 2: pred 2       ignored: pred 0, 2
    std::vector<int32_t> label = {0, 0, 0, 1, 1, 1, 1, 2, 255, 255};
    std::vector<int32_t> pred = {0, 0, 1, 1, 1, 1, 2, 2, 0, 2};
    SegmentationMetrics m(3);
    m.add(pred.data(), label.data(), 10);
    // I = (2, 3, 1); predicted = (2, 4, 2); target = (3, 4, 1); U = P + T - I = (3, 5, 2)
    CHECK(m.intersection() == std::vector<int64_t>{2, 3, 1});
    CHECK(m.union_() == std::vector<int64_t>{3, 5, 2});
    CHECK(m.target() == std::vector<int64_t>{3, 4, 1});
    std::vector<double> iou = m.iou(), acc = m.accuracy();
    CHECK(iou[0] == doctest::Approx(2.0 / 3));
    CHECK(iou[1] == doctest::Approx(3.0 / 5));
    CHECK(iou[2] == doctest::Approx(1.0 / 2));
    CHECK(acc[0] == doctest::Approx(2.0 / 3));
    CHECK(acc[1] == doctest::Approx(3.0 / 4));
    CHECK(acc[2] == doctest::Approx(1.0));
    CHECK(m.miou() == doctest::Approx((2.0 / 3 + 3.0 / 5 + 1.0 / 2) / 3));
    CHECK(m.macc() == doctest::Approx((2.0 / 3 + 3.0 / 4 + 1.0) / 3));
    CHECK(m.all_acc() == doctest::Approx(6.0 / 8));
    // the confusion matrix [label][pred]
    CHECK(m.confusion() == std::vector<int64_t>{2, 1, 0, 0, 3, 1, 0, 0, 1});
    // among pixels labelled and predicted as classes 1 or 2: 3 + 1 right of 3 + 1 + 1
    CHECK(m.group_accuracy({1, 2}) == doctest::Approx(4.0 / 5));
}

TEST_CASE("metrics: sums run over the whole set, not per image; absent classes count as zero") {
    SegmentationMetrics a(4), b(4);
    std::vector<int32_t> l1 = {0, 0, 1}, p1 = {0, 1, 1}, l2 = {1, 1, 1, 1}, p2 = {1, 1, 1, 0};
    a.add(p1.data(), l1.data(), 3);
    a.add(p2.data(), l2.data(), 4);
    std::vector<int32_t> l = {0, 0, 1, 1, 1, 1, 1}, p = {0, 1, 1, 1, 1, 1, 0};
    b.add(p.data(), l.data(), 7);
    CHECK(a.iou() == b.iou());
    // classes 2 and 3 appear nowhere: IoU 0, and they still pull the mean down (semseg's rule)
    CHECK(a.iou()[2] == 0.0);
    CHECK(a.miou() == doctest::Approx((a.iou()[0] + a.iou()[1]) / 4));
    nlohmann::json j = a.to_json({"road", "car"});
    CHECK(j["classes"][0]["name"] == "road");
    CHECK(j["classes"][3]["name"] == "class_3");
    CHECK(j["classes"][3]["present"] == false);
    CHECK(a.table({"road", "car"}).find("(absent: counts as 0)") != std::string::npos);
}

TEST_CASE("metrics: out-of-range labels and predictions are errors") {
    SegmentationMetrics m(3);
    std::vector<int32_t> l = {0, 7}, p = {0, 0};
    CHECK_THROWS_WITH_AS(m.add(p.data(), l.data(), 2), doctest::Contains("label value 7 at pixel 1"), Error);
    std::vector<int32_t> l2 = {0, 1}, p2 = {0, 3};
    CHECK_THROWS_WITH_AS(m.add(p2.data(), l2.data(), 2), doctest::Contains("prediction 3 at pixel 1"), Error);
}

using strata::testing::random_image;
using strata::testing::tiny_eval_model;

namespace {

void check_probabilities(const Tensor& p, int64_t c, int64_t h, int64_t w) {
    REQUIRE(p.shape() == Shape{c, h, w});
    std::vector<float> v = p.to_vector();
    double worst = 0;
    for (int64_t i = 0; i < h * w; ++i) {
        double s = 0;
        for (int64_t k = 0; k < c; ++k) s += v[size_t(k * h * w + i)];
        worst = std::max(worst, std::abs(s - 1.0));
    }
    CHECK(worst < 1e-4);
}

}  // namespace

TEST_CASE("evaluate: whole, sliding-window and multi-scale predictions are probability maps of the image size") {
    PSPNet model = tiny_eval_model(11);
    Image im = random_image(29, 45, 1);
    EvalOptions o;
    check_probabilities(predict_probabilities(model, im, o), 4, 29, 45);
    o.scales = {0.5, 1.0, 1.5};
    check_probabilities(predict_probabilities(model, im, o), 4, 29, 45);
    o.mode = "slide";
    o.crop_h = o.crop_w = 17;
    o.base_size = 0;
    o.scales = {1.0};
    check_probabilities(predict_probabilities(model, im, o), 4, 29, 45);
    o.base_size = 60;  // long side 45 -> 60, then back
    check_probabilities(predict_probabilities(model, im, o), 4, 29, 45);
    o.crop_h = o.crop_w = 65;  // a crop larger than the image: one padded window
    check_probabilities(predict_probabilities(model, im, o), 4, 29, 45);
}

TEST_CASE("evaluate: a window grid that covers the image exactly equals one forward per window") {
    // A 33x33 image with 17x17 crops: stride ceil(17*2/3) = 12, windows at 0, 12, 16 per axis. With base_size 0
    // and one scale, the centre pixel (16, 16) lies in all 9 windows; the corner (0, 0) only in the first.
    PSPNet model = tiny_eval_model(11);
    Image im = random_image(33, 33, 2);
    EvalOptions slide;
    slide.mode = "slide";
    slide.crop_h = slide.crop_w = 17;
    slide.base_size = 0;
    Tensor p = predict_probabilities(model, im, slide);
    Image corner(17, 17, 3);
    for (int y = 0; y < 17; ++y)
        for (int x = 0; x < 17; ++x) std::copy(im.pixel(y, x), im.pixel(y, x) + 3, corner.pixel(y, x));
    Tensor q = predict_probabilities(model, corner, EvalOptions{});
    std::vector<float> pv = p.to_vector(), qv = q.to_vector();
    for (int k = 0; k < 4; ++k) CHECK(pv[size_t(k * 33 * 33)] == doctest::Approx(qv[size_t(k * 17 * 17)]).epsilon(1e-5));
}

TEST_CASE("evaluate: with flip averaging the prediction of a mirrored image is the mirrored prediction") {
    PSPNet model = tiny_eval_model(11);
    Image im = random_image(25, 33, 3), mirrored(25, 33, 3);
    for (int y = 0; y < 25; ++y)
        for (int x = 0; x < 33; ++x) std::copy(im.pixel(y, x), im.pixel(y, x) + 3, mirrored.pixel(y, 32 - x));
    EvalOptions o;
    o.flip = true;
    std::vector<float> a = predict_probabilities(model, im, o).to_vector();
    std::vector<float> b = predict_probabilities(model, mirrored, o).to_vector();
    double worst = 0;
    for (int k = 0; k < 4; ++k)
        for (int y = 0; y < 25; ++y)
            for (int x = 0; x < 33; ++x)
                worst = std::max(worst, double(std::abs(a[size_t((k * 25 + y) * 33 + x)] -
                                                        b[size_t((k * 25 + y) * 33 + 32 - x)])));
    CHECK(worst < 1e-5);
    LabelMap l = argmax_labels(from_vector({0.1f, 0.9f, 0.7f, 0.05f, 0.2f, 0.05f}, {3, 1, 2}));
    CHECK(l.data == std::vector<int32_t>{1, 0});
}
