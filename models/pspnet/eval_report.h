// What an evaluation of a run writes and prints (the `eval` program and the evaluations during and after training).
//
// Each evaluation protocol has its own output, so that evaluating a trained run with another protocol never
// overwrites an earlier result:
//     <run_dir>/eval/<protocol>.json     mIoU, mAcc, allAcc, per-class IoU/accuracy/pixels, the protocol, the images
//     <run_dir>/eval/<protocol>/         the first save_predictions panels (input | label | prediction + legend)
// where <protocol> names the mode, the scales and flip: "whole", "whole_flip", "slide_s1.5", "slide_ms0.5-1.75_flip".
// The config key eval_output=<file.json> chooses the JSON path instead; its panels then go to <file>/ beside it.
//
// While it runs, the evaluation reports progress on stderr: on a terminal one line rewritten in place, otherwise
// (a log file, a pipe, a scheduler) a line per image for short sets and per ~5% for long ones, and at least one
// every 30 seconds, with the elapsed time and an estimate of the rest.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "framework/communicator.h"
#include "models/pspnet/config.h"
#include "models/pspnet/evaluate.h"
#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

// "whole", "slide_flip", "whole_s0.5", "slide_ms0.5-1.75_flip": the mode, then the scale when it is not 1 (s) or
// the smallest and largest of several (ms), then "_flip" when flip is on.
std::string eval_protocol_name(const EvalOptions& options);

struct EvalOutputPaths {
    std::string json;         // the result
    std::string predictions;  // the folder of prediction panels
};
// Where an evaluation with this config writes (see the file comment).
EvalOutputPaths eval_output_paths(const RunConfig& config);

// Evaluates the model on the config's validation split, writes the result and the prediction panels to
// eval_output_paths(), prints the per-class table when verbose, and returns the result. When no label pixel of the
// evaluated images is a class (all are ignore_label), it says so on stderr and in the result's "warning" instead
// of presenting the meaningless mIoU.
// Data parallel (comm with several ranks): each rank evaluates its consecutive share of the images, the counts
// are summed over the ranks, so the mIoU is exactly one process's; every rank returns the result and rank 0 alone
// writes the JSON and its own share's panels and prints. Every rank must call it.
nlohmann::json evaluate_run(PSPNet& model, const RunConfig& config, bool verbose, Communicator* comm = nullptr);

// A trained model ready to predict, for the eval and infer programs: the config's threads, the model it describes
// with weights= (default <run_dir>/model.safetensors) loaded strictly, on the config's device, in eval mode.
struct TrainedModel {
    std::unique_ptr<PSPNet> model;
    Device device;
};
TrainedModel load_trained_model(const RunConfig& config);

// "m:ss", or "h:mm:ss" from an hour up: elapsed times and ETAs on the progress lines of evaluation and training.
std::string format_duration(double seconds);

// Progress lines for an evaluation of `total` images (see the file comment). Call it after each image.
struct EvalProgress {
    EvalProgress(std::FILE* out, bool terminal);
    void operator()(int64_t done, int64_t total);
    void finish();  // ends the terminal's in-place line

    std::FILE* out;
    bool terminal;
    std::chrono::steady_clock::time_point start, last_line;
    bool wrote_in_place = false;
};

}  // namespace strata::pspnet
