// Training checkpoints: everything needed to continue a run exactly where it stopped.
//
// A checkpoint at iteration N is three files in <run_dir>/checkpoints/:
//   iter_N.safetensors        the model's state_dict (parameters and BN buffers), semseg's names
//   iter_N.optim.safetensors  the SGD momentum buffers
//   iter_N.json               iteration, the random generator's state, the loader's position, file names
// and <run_dir>/checkpoints/latest, a one-line file naming the newest iter_N.json. Both safetensors files carry the
// iteration in their metadata. Every file is written to a temporary name, fsynced and renamed
// (framework/safetensors.h), and `latest` is updated last, so a crash, a power loss or Ctrl-C in the middle of
// saving leaves the previous checkpoint intact and `latest` pointing at it: a checkpoint is the newest only once
// all its files are complete. A save that fails (a full disk) removes the files it had written and says how much
// space a checkpoint needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/module.h"
#include "framework/optimizer.h"

namespace strata::pspnet {

struct TrainingPosition {
    int64_t iteration = 0;     // the number of optimizer steps done
    uint64_t rng_seed = 0;     // the default generator's state (dropout draws from it)
    uint64_t rng_counter = 0;
    int64_t loader_step = 0;   // the next batch the loader hands out
};

// Saves a checkpoint and keeps only the newest `keep` (older iter_* files are removed).
void save_checkpoint(const std::string& run_dir, const Module& model, const SGD& optimizer,
                     const TrainingPosition& position, int keep = 2);
// What a checkpoint of this model and optimizer takes on disk: the sum of their tensors' bytes (the headers add a
// few kilobytes).
uint64_t checkpoint_bytes(const Module& model, const SGD& optimizer);
// True if <run_dir>/checkpoints/latest exists.
bool has_checkpoint(const std::string& run_dir);
struct ResumeOptions {
    int64_t iterations = -1;       // the run's total; a checkpoint beyond it is an error (-1: no bound)
    bool reset_optimizer = false;  // do not load the optimizer state: momentum starts from zero (--reset-optimizer)
};
// Loads the newest checkpoint into model and optimizer (strict names and shapes) and returns its position. The
// checkpoint is validated first: its iteration lies in [0, iterations], the iteration in iter_N.json agrees with
// the one in both safetensors files' metadata, and the optimizer file is readable and, after a momentum step,
// holds the momentum buffers; anything else is an error naming the file (an unusable optimizer file can be
// skipped with options.reset_optimizer).
TrainingPosition load_checkpoint(const std::string& run_dir, Module& model, SGD& optimizer,
                                 const ResumeOptions& options = {});
// How load_weights treats a file that does not fit the model exactly (the config keys in brackets).
struct WeightsOptions {
    // Every model tensor must be in the file and every file tensor used (eval, infer). false (train's weights=):
    // missing and unexpected tensors are reported, e.g. an ImageNet backbone without the heads.
    bool strict = true;
    bool skip_mismatched = false;  // [weights_skip_mismatched] a tensor whose shape differs is skipped and named
    bool allow_nonfinite = false;  // [allow_nonfinite_weights] load NaN/Inf values instead of refusing the file
    bool allow_unmatched = false;  // [allow_unmatched_weights] a file that matches no model tensor is no error
};

// What load_weights did, by name (the model's names; a file's "module." prefix is removed first).
struct SkippedTensor {
    std::string name;
    Shape file_shape, model_shape;
};
struct WeightsReport {
    std::string path;
    std::vector<std::string> loaded;      // copied into the model
    std::vector<std::string> missing;     // model tensors not in the file: they keep their initial values
    std::vector<std::string> unexpected;  // file tensors the model does not have: not used
    std::vector<SkippedTensor> skipped;   // in both, shapes differ, skipped (weights_skip_mismatched)
    bool exact() const { return missing.empty() && unexpected.empty() && skipped.empty(); }
};
// "weights w.safetensors: loaded 118 of 122 model tensors" and a line per non-empty list, every name in it.
std::string describe(const WeightsReport& report);

// Loads weights only (a checkpoint's iter_N.safetensors or any safetensors state dict) into model. Nothing is
// copied unless the whole file passes: a shape or dtype mismatch (unless skip_mismatched), a file that matches no
// model tensor (unless allow_unmatched), any NaN or Inf in a tensor to be loaded (unless allow_nonfinite) and, when
// strict, any missing or unexpected tensor are errors naming the file, the tensor and the option that allows it.
WeightsReport load_weights(const std::string& path, Module& model, const WeightsOptions& options);

}  // namespace strata::pspnet
