// Segmentation metrics exactly as semseg computes them (util/util.py intersectionAndUnion, tool/test.py cal_acc).
//
// Over the whole dataset (not averaged per image), for each class c, counting only pixels whose label is not the
// ignore label:
//     I_c = #pixels predicted c AND labelled c        U_c = #predicted c + #labelled c - I_c     T_c = #labelled c
//     IoU_c = I_c / (U_c + 1e-10)      Acc_c = I_c / (T_c + 1e-10)
//     mIoU = mean_c IoU_c     mAcc = mean_c Acc_c     allAcc = sum_c I_c / sum_c T_c
//
// NOTE: a class that appears neither in the labels nor in the predictions has IoU 0 and still counts in the mean
// (semseg's rule: it adds 1e-10 instead of skipping). mmsegmentation skips such classes (nanmean); on small
// evaluation sets the two differ. `present` marks the classes with T_c > 0 so a report can show both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata {
class Communicator;
}

namespace strata::pspnet {

struct SegmentationMetrics {
    explicit SegmentationMetrics(int64_t classes, int64_t ignore_label = 255);

    // Adds one batch: pred and label hold n class indices each (label may contain the ignore label). A prediction
    // outside [0, classes) is an error; a label outside [0, classes) that is not the ignore label too.
    void add(const int32_t* pred, const int32_t* label, int64_t n);

    // Data-parallel evaluation: replaces the counts by their sums over the ranks (intersection, union, target,
    // predictions, confusion; one all_reduce of integers), so that each rank's metrics are those of every rank's
    // images together, exactly as one process would count them. Every rank must call it.
    void sum_over_ranks(Communicator& comm);

    int64_t classes() const { return classes_; }
    std::vector<double> iou() const;
    std::vector<double> accuracy() const;
    double miou() const;
    double macc() const;
    double all_acc() const;
    const std::vector<int64_t>& intersection() const { return intersection_; }
    const std::vector<int64_t>& union_() const { return union_count_; }
    const std::vector<int64_t>& target() const { return target_; }
    std::vector<int64_t> confusion() const { return confusion_; }  // [label * classes + pred]
    // Among pixels labelled with one of `group` and predicted as one of `group`, the fraction predicted as the
    // right one: "given that it is an object, is it the right object?" (ContextScenes' boat/car/cow diagnostic).
    // 0 when no pixel qualifies.
    double group_accuracy(const std::vector<int64_t>& group) const;

    // {"mIoU", "mAcc", "allAcc", "classes": [{"name", "iou", "acc", "pixels"}]}
    nlohmann::json to_json(const std::vector<std::string>& names) const;
    // A table for the terminal: one line per class (name, IoU, accuracy, share of labelled pixels) and the summary.
    std::string table(const std::vector<std::string>& names) const;

private:
    int64_t classes_, ignore_;
    std::vector<int64_t> intersection_, union_count_, target_, predicted_, confusion_;
};

}  // namespace strata::pspnet
