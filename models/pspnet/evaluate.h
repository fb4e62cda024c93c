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
// Memory: semseg resizes every scale's probabilities to the original h x w and sums them there, a classes x h x w
// float buffer (2 GB for 8 classes of an 8000x8000 image, and several such temporaries). predict_labels keeps each
// scale's probabilities at the resolution they were computed at (base_size * s in slide mode) and produces the
// label map row band by row band: the bilinear resize of a band of output rows reads only two source rows per
// output row, so the band's averaged probabilities and their argmax are exactly semseg's, computed in the same
// float operations as the full-size path (predict_probabilities), while only classes x band x w floats exist at the
// original size. Before any forward pass the memory a prediction plans to use is estimated, and an image whose
// prediction would not fit in the memory available is refused with the size, the estimate and what to change.
//
// Metrics are accumulated over the whole set (models/pspnet/metrics.h).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "models/pspnet/metrics.h"
#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

// The protocol (RunConfig::eval.protocol holds the config's; mean, std, device and the memory limit are set in code).
struct EvalOptions {
    std::string mode = "whole";          // whole | slide
    int crop_h = 473, crop_w = 473;      // slide windows
    int base_size = 512;                 // slide: long side at scale 1 (0: keep the image's own size)
    std::vector<double> scales = {1.0};
    bool flip = false;
    Rgbf mean = kImageNetMean, std = kImageNetStd;
    Device device = kCPU;
    // The most bytes one image's prediction may plan to use (estimate_prediction_bytes); 0 = the memory available
    // when the image's prediction starts (available_memory_bytes).
    int64_t memory_limit_bytes = 0;
};

// Refuses options the protocol cannot run, naming the parameter: an unknown mode, no scales, a scale that is not
// a positive finite number, and in slide mode a crop (test_h, test_w) under 2 * output_stride + 1 pixels or a
// base_size that is negative or under that size (0 keeps the image's size). The prediction functions call it.
void check_eval_options(const EvalOptions& options, int64_t output_stride = 8);

// The size the image is processed at for scale s: h x w times s in whole mode, and in slide mode the long side
// resized to base_size * s (the image's own size times s when base_size is 0), at least 1 x 1.
Size2 processing_size(int h, int w, const EvalOptions& options, double s);

// Estimated peak bytes of one forward pass of `batch` images of h x w in eval mode: the widest convolution step
// (its im2col columns, input, the block input kept for the residual, output), the input and the logits at the
// input size with their host copy and probabilities. A rough figure for refusing hopeless sizes up front.
int64_t estimate_forward_bytes(const PSPNet& model, int64_t batch, int64_t h, int64_t w);
// Estimated peak host bytes of predict_labels on an h x w image: every scale's probabilities at its processing
// size, the largest step (resized image, padded image and window sums in slide mode, forward pass), and the label
// map. On a GPU (options.device) the forward pass counts only what it holds on the host (input, logits' copy).
int64_t estimate_prediction_bytes(const PSPNet& model, int h, int w, const EvalOptions& options);
// The memory that can be allocated now: the kernel's MemAvailable (free memory and reclaimable caches), or the
// room left under the container's (cgroup v2) limit when that is smaller; 0 when neither can be read (no check).
int64_t available_memory_bytes();

// One scale's class probabilities at its processing size: data[(c * h + y) * w + x].
struct ScoreMap {
    int64_t classes = 0;
    int h = 0, w = 0;
    std::vector<float> data;
};
// The probabilities of one RGB image at scale s, at processing_size(..., s). The model must be in eval mode.
ScoreMap predict_scale(PSPNet& model, const Image& image, const EvalOptions& options, double s);
// The label map of an h x w image from per-scale probabilities: each map bilinearly resized to h x w (pixel
// centres aligned, as upsample_bilinear2d with align_corners=false), averaged over the maps, argmax (the lowest
// class wins a tie). Works band_rows output rows at a time (0: a band of about 8 M floats): no classes x h x w
// buffer is ever allocated, and the labels equal argmax_labels of the full-size average exactly.
LabelMap labels_from_scores(const std::vector<ScoreMap>& scores, int h, int w, int band_rows = 0);

// The predicted labels (h, w) of one RGB image, without a classes x h x w buffer (see the top of the file).
// Refuses up front, naming the size, the estimate and what to change, when estimate_prediction_bytes exceeds
// options.memory_limit_bytes (0: available_memory_bytes()).
LabelMap predict_labels(PSPNet& model, const Image& image, const EvalOptions& options);
// predict_labels with every failure (a refused estimate, an allocation that failed, a bad option) rethrown as an
// Error that starts with `name`; running out of memory also names the image's size and what to change.
LabelMap predict_labels_of(PSPNet& model, const Image& image, const EvalOptions& options, const std::string& name);

// Class probabilities (classes, h, w) of one RGB image, on the CPU: semseg's full-size average over the scales.
// Holds classes x h x w floats and more; for labels use predict_labels. The model must be in eval mode.
Tensor predict_probabilities(PSPNet& model, const Image& image, const EvalOptions& options);
// Argmax over classes of a (classes, h, w) probability tensor (the lowest class wins a tie).
LabelMap argmax_labels(const Tensor& probabilities);

// Runs the model over a dataset (the first max_images, 0 = all) and accumulates the metrics. on_prediction, if
// given, sees each sample with its prediction (for writing pictures). progress, if given, is called per image.
// Data parallel: with shards > 1 only part `shard` of the images is evaluated, consecutive images
// [shard * n / shards, (shard + 1) * n / shards), so the shards together hold each image once (sum the metrics with
// SegmentationMetrics::sum_over_ranks); on_prediction gets the image's index in the whole set.
SegmentationMetrics evaluate_dataset(PSPNet& model, const Dataset& dataset, const EvalOptions& options,
                                     int64_t max_images, int ignore_label,
                                     const std::function<void(int64_t, const Sample&, const LabelMap&)>& on_prediction,
                                     const std::function<void(int64_t, int64_t)>& progress = nullptr, int shard = 0,
                                     int shards = 1);

// input | label | prediction side by side, label and prediction colourised with `palette` (255 shown as white).
Image prediction_panel(const Image& image, const LabelMap& label, const LabelMap& prediction,
                       const std::vector<Rgb>& palette);
// The input blended with the colourised prediction (alpha = weight of the colours).
Image prediction_overlay(const Image& image, const LabelMap& prediction, const std::vector<Rgb>& palette,
                         float alpha = 0.5f);

}  // namespace strata::pspnet
