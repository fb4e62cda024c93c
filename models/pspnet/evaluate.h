// Evaluation and prediction, following semseg's tool/test.py.
//
// For each image and each scale s:
//   whole:  the image resized by s goes through the network in one piece; the logits are upsampled back to that
//           size (align_corners=True, as semseg's net_process does), then softmaxed.
//   slide:  the image is resized so that its long side is base_size * s, padded with the mean colour up to the crop
//           size if smaller, and covered by crop windows with stride ceil(2/3 crop) whose last window ends at the
//           border; each window's softmax is accumulated and divided by how many windows covered each pixel.
// With flip on, every forward also sees the horizontally flipped input and the two probability maps are averaged.
// The probabilities of each scale are resized to the original size (bilinear, pixel centres aligned as
// cv2.resize does) and averaged over the scales; the prediction is their argmax.
//
// Metrics are accumulated over the whole set (models/pspnet/metrics.h).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/transforms.h"
#include "models/pspnet/metrics.h"
#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

struct EvalOptions {
    std::string mode = "whole";          // whole | slide
    int crop_h = 473, crop_w = 473;      // slide windows
    int base_size = 512;                 // slide: long side at scale 1 (0: keep the image's own size)
    std::vector<double> scales = {1.0};
    bool flip = false;
    Rgbf mean = kImageNetMean, std = kImageNetStd;
    Device device = kCPU;
};

EvalOptions eval_options(const nlohmann::json& config);

// Class probabilities (classes, h, w) of one RGB image, on the CPU. The model must be in eval mode.
Tensor predict_probabilities(PSPNet& model, const Image& image, const EvalOptions& options);
// Argmax over classes of a (classes, h, w) probability tensor.
LabelMap argmax_labels(const Tensor& probabilities);

// Runs the model over a dataset (the first max_images, 0 = all) and accumulates the metrics. on_prediction, if
// given, sees each sample with its prediction (for writing pictures). progress, if given, is called per image.
SegmentationMetrics evaluate_dataset(PSPNet& model, const Dataset& dataset, const EvalOptions& options,
                                     int64_t max_images, int ignore_label,
                                     const std::function<void(int64_t, const Sample&, const LabelMap&)>& on_prediction,
                                     const std::function<void(int64_t, int64_t)>& progress = nullptr);

// input | label | prediction side by side, label and prediction colourised with `palette` (255 shown as white).
Image prediction_panel(const Image& image, const LabelMap& label, const LabelMap& prediction,
                       const std::vector<Rgb>& palette);
// The input blended with the colourised prediction (alpha = weight of the colours).
Image prediction_overlay(const Image& image, const LabelMap& prediction, const std::vector<Rgb>& palette,
                         float alpha = 0.5f);

}  // namespace strata::pspnet
