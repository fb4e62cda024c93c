// The PSPNet training loop (semseg's tool/train.py in C++), used by the `train` program and by the tests.
//
// train() is setup + loop. The loop's body is training_step (trainer.cpp): poly LR, forward with the aux head,
// loss = CE(logits, labels) + aux_weight * CE(aux_logits, labels), backward, SGD (the heads at head_lr_mult x LR).
// Around it the loop calls small pieces: the progress log (metrics.jsonl every log_every steps, TensorBoard scalars,
// the terminal line and ETA), a checkpoint every save_every (checkpoint.h), an evaluation every eval_every
// (evaluate_run, eval_report.h; curves.png redrawn, curves.h), and the stop signals: Ctrl-C (SIGINT) or SIGTERM
// finishes the step, saves a checkpoint and returns. A resumed run continues from the newest checkpoint with the
// losses of an uninterrupted one. The run folder is locked meanwhile (run_folder.h). At the end the weights go to
// <run_dir>/model.safetensors and the model is evaluated.
//
// Data parallel (started by mpirun, docs/distributed.md): batch_size is the global batch, split evenly over the
// ranks; every rank checks that it built rank 0's model and takes rank 0's weights (and, on resume, its checkpoint);
// each loads its own part of every global batch; batch norm is synchronized (sync_bn); each rank's loss is weighted
// so that the averaged gradient is exactly the gradient of the global batch's loss; the gradients are averaged in
// buckets after the backward; validation is sharded and its counts summed. Rank 0 alone writes the run folder.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/communicator.h"
#include "models/pspnet/config.h"

namespace strata::pspnet {

struct TrainOptions {
    bool resume = false;        // continue from <run_dir>/checkpoints/latest
    int64_t stop_after = -1;    // stop (with a checkpoint) after this many iterations of this call: for tests
    bool evaluate = true;       // evaluate on the validation split at the end
    bool verbose = true;        // progress on stderr
    bool reset_optimizer = false;  // resume with zero momentum instead of the checkpoint's optimizer state
    // The ranks of data-parallel training; null: world_communicator() (mpirun's ranks, else one process), over
    // which `communicator=` builds NCCL for a CUDA device. Given here, it is used as it is (the communicator key is
    // not applied) and a CUDA run goes on its GPU (home_device()).
    std::shared_ptr<Communicator> comm = nullptr;
    // Called before each step with the number of steps done (tests inject failures with it).
    std::function<void(int64_t)> before_step = nullptr;
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
