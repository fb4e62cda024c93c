// The PSPNet training loop (semseg's tool/train.py in C++), used by the `train` program and by the tests.
//
// train() is setup + loop. The loop's body is training_step (trainer.cpp): poly learning rate, forward with the
// auxiliary head, loss = CE(logits, labels) + aux_weight * CE(aux_logits, labels) with the ignore label, backward,
// SGD with the backbone at the base LR and the heads (ppm, cls, aux) at head_lr_mult times it. Around it the loop
// calls small pieces: the progress log (a JSON line every log_every iterations in <run_dir>/metrics.jsonl, the same
// scalars in <run_dir>/tensorboard/ when tensorboard=true, the terminal line with its ETA), a checkpoint every
// save_every (checkpoint.h), an evaluation every eval_every (evaluate_run, eval_report.h, which also redraws
// curves.png, curves.h), and the stop signals: Ctrl-C (SIGINT) or SIGTERM finishes the current iteration, saves a
// checkpoint and returns. A run started with resume continues from the newest checkpoint and produces the same
// losses as an uninterrupted run. The run folder is locked for the duration (run_folder.h): a second training on the
// same run_dir is refused. At the end the weights go to <run_dir>/model.safetensors and the model is evaluated.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/pspnet/config.h"

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

TrainResult train(const RunConfig& config, const TrainOptions& options);

}  // namespace strata::pspnet
