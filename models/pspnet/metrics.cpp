// intersection / union / accuracy accumulation (see metrics.h for the formulas).
#include "models/pspnet/metrics.h"

#include <cstdio>

#include "framework/check.h"
#include "framework/communicator.h"

namespace strata::pspnet {

SegmentationMetrics::SegmentationMetrics(int64_t classes, int64_t ignore_label)
    : classes_(classes), ignore_(ignore_label), intersection_(size_t(classes)), union_count_(size_t(classes)),
      target_(size_t(classes)), predicted_(size_t(classes)), confusion_(size_t(classes * classes)) {
    STRATA_CHECK(classes >= 1, "metrics: classes must be >= 1");
}

void SegmentationMetrics::add(const int32_t* pred, const int32_t* label, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        int64_t l = label[i], p = pred[i];
        if (l == ignore_) continue;  // semseg sets pred to 255 there; nothing is counted
        STRATA_CHECK(l >= 0 && l < classes_, "metrics: label value ", l, " at pixel ", i, " is outside [0, ",
                     classes_, ") and is not the ignore label ", ignore_);
        STRATA_CHECK(p >= 0 && p < classes_, "metrics: prediction ", p, " at pixel ", i, " is outside [0, ",
                     classes_, ")");
        confusion_[size_t(l * classes_ + p)]++;
        target_[size_t(l)]++;
        predicted_[size_t(p)]++;
        if (l == p) intersection_[size_t(l)]++;
    }
    for (int64_t c = 0; c < classes_; ++c)
        union_count_[size_t(c)] = predicted_[size_t(c)] + target_[size_t(c)] - intersection_[size_t(c)];
}

void SegmentationMetrics::sum_over_ranks(Communicator& comm) {
    std::vector<std::vector<int64_t>*> counts = {&intersection_, &target_, &predicted_, &confusion_};
    std::vector<int64_t> packed;
    for (const auto* v : counts) packed.insert(packed.end(), v->begin(), v->end());
    Tensor t = from_vector_i64(packed, {int64_t(packed.size())});
    all_reduce_sum(comm, t);
    packed = t.to_vector_i64();
    size_t k = 0;
    for (auto* v : counts)
        for (int64_t& x : *v) x = packed[k++];
    for (int64_t c = 0; c < classes_; ++c)
        union_count_[size_t(c)] = predicted_[size_t(c)] + target_[size_t(c)] - intersection_[size_t(c)];
}

std::vector<double> SegmentationMetrics::iou() const {
    std::vector<double> v(static_cast<size_t>(classes_));
    for (size_t c = 0; c < v.size(); ++c) v[c] = double(intersection_[c]) / (double(union_count_[c]) + 1e-10);
    return v;
}

std::vector<double> SegmentationMetrics::accuracy() const {
    std::vector<double> v(static_cast<size_t>(classes_));
    for (size_t c = 0; c < v.size(); ++c) v[c] = double(intersection_[c]) / (double(target_[c]) + 1e-10);
    return v;
}

namespace {
double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / double(v.size());
}
}  // namespace

double SegmentationMetrics::miou() const { return mean_of(iou()); }
double SegmentationMetrics::macc() const { return mean_of(accuracy()); }

double SegmentationMetrics::all_acc() const {
    int64_t i = 0, t = 0;
    for (int64_t c = 0; c < classes_; ++c) {
        i += intersection_[size_t(c)];
        t += target_[size_t(c)];
    }
    return double(i) / (double(t) + 1e-10);
}

double SegmentationMetrics::group_accuracy(const std::vector<int64_t>& group) const {
    int64_t right = 0, total = 0;
    for (int64_t l : group)
        for (int64_t p : group) {
            STRATA_CHECK(l >= 0 && l < classes_ && p >= 0 && p < classes_, "metrics: class ", l < 0 || l >= classes_ ? l : p,
                         " of the group is outside [0, ", classes_, ")");
            int64_t n = confusion_[size_t(l * classes_ + p)];
            total += n;
            if (l == p) right += n;
        }
    return total ? double(right) / double(total) : 0.0;
}

nlohmann::json SegmentationMetrics::to_json(const std::vector<std::string>& names) const {
    std::vector<double> ious = iou(), accs = accuracy();
    nlohmann::json classes = nlohmann::json::array();
    for (int64_t c = 0; c < classes_; ++c) {
        std::string name = size_t(c) < names.size() ? names[size_t(c)] : "class_" + std::to_string(c);
        classes.push_back({{"name", name}, {"iou", ious[size_t(c)]}, {"acc", accs[size_t(c)]},
                           {"pixels", target_[size_t(c)]}, {"present", target_[size_t(c)] > 0}});
    }
    return {{"mIoU", miou()}, {"mAcc", macc()}, {"allAcc", all_acc()}, {"classes", classes},
            {"absent_classes_count_as_zero", true}};
}

std::string SegmentationMetrics::table(const std::vector<std::string>& names) const {
    std::vector<double> ious = iou(), accs = accuracy();
    int64_t total = 0;
    for (int64_t t : target_) total += t;
    std::string out;
    char line[160];
    std::snprintf(line, sizeof line, "%-20s %8s %8s %9s\n", "class", "IoU", "acc", "pixels");
    out += line;
    for (int64_t c = 0; c < classes_; ++c) {
        std::string name = size_t(c) < names.size() ? names[size_t(c)] : "class_" + std::to_string(c);
        std::snprintf(line, sizeof line, "%-20s %8.4f %8.4f %8.2f%%%s\n", name.c_str(), ious[size_t(c)],
                      accs[size_t(c)], total ? 100.0 * double(target_[size_t(c)]) / double(total) : 0.0,
                      target_[size_t(c)] ? "" : "  (absent: counts as 0)");
        out += line;
    }
    std::snprintf(line, sizeof line, "mIoU %.4f  mAcc %.4f  allAcc %.4f\n", miou(), macc(), all_acc());
    return out + line;
}

}  // namespace strata::pspnet
