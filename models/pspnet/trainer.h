// The PSPNet training loop (semseg's tool/train.py in C++), used by the `train` program and by the tests.
//
// One iteration: take a batch from the loader, set the poly learning rate, forward through PSPNet, compute
// loss = CE(logits, labels) + aux_weight * CE(aux_logits, labels) with the ignore label, backward, SGD step with
// the backbone at the base LR and the heads (ppm, cls, aux) at head_lr_mult times it. Every log_every iterations a
// JSON line goes to <run_dir>/metrics.jsonl; every save_every a checkpoint (models/pspnet/checkpoint.h). A run
// started with resume continues from the newest checkpoint and produces the same losses as an uninterrupted run.
// Ctrl-C (SIGINT) or SIGTERM finishes the current iteration, saves a checkpoint and returns. The run folder is
// locked for the duration (models/pspnet/run_folder.h): a second training on the same run_dir is refused. The
// logged scalars also go to <run_dir>/tensorboard/ (tensorboard=true), and curves.png is redrawn after every
// evaluation (curves.h). Evaluations write <run_dir>/eval/<protocol>.json and prediction panels (eval_report.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "models/pspnet/curves.h"       // plot_curves, TensorBoard scalars
#include "models/pspnet/eval_report.h"  // evaluate_run
#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

struct TrainOptions {
    bool resume = false;        // continue from <run_dir>/checkpoints/latest
    int64_t stop_after = -1;    // stop (with a checkpoint) after this many iterations of this call: for tests
    bool evaluate = true;       // evaluate on the validation split at the end
    bool verbose = true;        // progress on stderr
    bool reset_optimizer = false;  // resume with zero momentum instead of the checkpoint's optimizer state
};

struct TrainResult {
    std::vector<float> losses;  // the total loss of every iteration this call ran
    int64_t iteration = 0;      // iterations done in all (including resumed ones)
    bool interrupted = false;   // stopped by Ctrl-C, SIGTERM or stop_after
    int stop_signal = 0;        // SIGINT or SIGTERM when a signal stopped it, else 0
    double seconds = 0;         // wall time of the loop
    nlohmann::json eval;        // the evaluation result (<run_dir>/eval/<protocol>.json) when evaluate ran
};

// The train or validation dataset a config names.
std::shared_ptr<Dataset> open_config_dataset(const nlohmann::json& config, bool train);

TrainResult train(const nlohmann::json& config, const TrainOptions& options);

}  // namespace strata::pspnet
