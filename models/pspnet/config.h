// The run configuration of the PSPNet programs (train, eval, infer): typed structs, built once from flat JSON keys.
//
// The programs read a RunConfig, typed fields (cfg.train.base_lr) that load_config builds once: defaults <- config
// file <- key=value overrides (each key and its type checked as it is set; a value is JSON when it parses as JSON,
// else a string), then every value against its range, then the fields, then the rules between keys.
//
//     build/bin/train configs/voc2012_pspnet50.json data_root=/data/VOCdevkit/VOC2012 batch_size=8 device=cpu
//
// Every key is declared once, in the schema table of config.cpp: the field it fills, its type, default (semseg's
// voc2012_pspnet50.yaml where semseg has it), meaning and allowed values; the defaults, --help, the checks and both
// conversions come from it, and the rules between keys are one function. JSON stays at the edges: config files,
// overrides, the run folder's config.json (to_json) and the dataset formats, which read their own keys (label_dir,
// scene_size, ...) from the flat config (data/dataset.h). An unknown key (the nearest ones suggested), a wrong type,
// a key given twice in a file, a value out of range or against a rule is one error naming the key, its value, where
// it came from and the fix.
#pragma once

#include <limits>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "models/pspnet/checkpoint.h"  // WeightsOptions
#include "models/pspnet/evaluate.h"    // EvalOptions
#include "models/pspnet/pspnet.h"      // PSPNetConfig

namespace strata::pspnet {

// The data: which dataset, its labels, and semseg's training augmentation.
struct DataConfig {
    std::string format, root;              // the dataset key (a registered format, data/dataset.h), data_root
    std::string train_split, val_split;
    int ignore_label;                      // not scored; never a class index
    std::vector<std::string> class_names;  // empty: the dataset's own names
    int64_t max_image_pixels;              // the largest width*height an image file may claim
    int workers;                           // loader threads
    int train_h, train_w;                  // the training crop
    double scale_min, scale_max, rotate_min, rotate_max;
    bool blur, flip;
    nlohmann::json format_options;         // the keys one format reads itself (label_dir, scene_size, ...)
};

// The optimisation (semseg's tool/train.py) and the training loop's bookkeeping.
struct TrainConfig {
    int batch_size;
    int64_t iterations, seed;
    double base_lr, head_lr_mult, power, momentum, weight_decay;
    int64_t log_every, save_every, eval_every;  // 0: never (save and eval still run at the end)
    bool tensorboard;
};

// The evaluation (semseg's tool/test.py).
struct EvalConfig {
    EvalOptions protocol;                  // eval_mode, test_h/w, base_size, scales, eval_flip (device: at run time)
    int64_t max_images;                    // 0: the whole split
    int save_predictions;                  // prediction panels written
    std::string output;                    // eval_output: "" = <run_dir>/eval/<protocol>.json
    std::vector<int64_t> object_classes;
};

// Weights loaded into the model before training (a backbone) or for eval and infer ("": <run_dir>/model.safetensors).
struct WeightsConfig {
    std::string path;
    WeightsOptions options;                // strict: true (eval and infer); train loads its weights= leniently
};

// Every field is one key of the schema table (config.cpp), which says its meaning, default and range; make one with
// load_config or default_config.
struct RunConfig {
    PSPNetConfig model;
    DataConfig data;
    TrainConfig train;
    EvalConfig eval;
    WeightsConfig weights;
    // where and how the programs run (the ranks of data-parallel training come from mpirun, not from the config)
    std::string device, run_dir;           // device: cpu, cuda, cuda:N, auto
    int threads;                           // 0: all cores
    bool reproducible;                     // GEMMs on the fixed-order kernel
    std::string gemm;                      // the CPU GEMM: strata or openblas (framework/blas.h)
    std::string conv_algo;                 // CPU 3x3 convs: auto, winograd or gemm (layers/conv2d_winograd.h)
    bool profile;                          // time every kernel, report at exit (framework/profile.h)
    std::vector<std::string> plugins;      // shared objects to load before the model is built (docs/plugins.md)
    bool sync_bn;                          // synchronized batch norm when there are several ranks
    double collective_timeout;             // seconds; 0: the communicator's own deadline
    std::string communicator;              // data parallel: auto, mpi or nccl (choose_data_parallel_backend)
    double bucket_mb;                      // data parallel: MiB of gradients per all-reduce bucket
};

// ---- the schema ----
enum class KeyType { kInt, kNumber, kBool, kString, kIntList, kNumberList, kStringList };
// Where a key's value lives in a RunConfig.
using Field = std::variant<int*, int64_t*, double*, bool*, std::string*, std::vector<int64_t>*, std::vector<double>*,
                           std::vector<std::string>*>;

// One config key: the single place that says what it means and what it may hold.
struct KeySpec {
    std::string name, group;         // group: model, data, training, weights, running, evaluation (for --help)
    KeyType type = KeyType::kInt;
    nlohmann::json default_value;
    std::string meaning;
    // The field the key fills; nullptr: a dataset format's own key, kept in DataConfig::format_options.
    Field (*field)(RunConfig&) = nullptr;
    // Numbers and each element of a number list: the allowed interval (an infinite bound = unbounded).
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
    bool min_open = false, max_open = false;  // true: the bound itself is excluded
    std::vector<nlohmann::json> choices;      // the allowed values; empty = any value in range
    bool non_empty = false;                   // strings and lists: "" / [] are not allowed
};

// Every key, in --help order.
const std::vector<KeySpec>& config_schema();
// The key's spec, or nullptr for an unknown key.
const KeySpec* find_key(const std::string& name);
// "an integer", "a number", "true/false", "a string", "a list of integers", ...
std::string type_name(KeyType type);
// What the key accepts, in words: "an integer >= 1", "a number in [0, 1)", "one of: whole, slide".
std::string allowed_values(const KeySpec& spec);
// The valid keys nearest to a misspelt one (edit distance, then shared words), best first; at most `count`.
std::vector<std::string> nearest_keys(const std::string& key, size_t count = 3);
// Every key with its type, default and meaning: the config part of the programs' --help.
std::string config_help();
// A number as the help and the messages write it: "0.0001", "2", "1.5" (six significant digits at most).
std::string format_number(double v);

// ---- building and checking a RunConfig ----
// The defaults of every key.
RunConfig default_config();
// defaults <- file (if path is not empty) <- preset (keys set after the file, e.g. the run folder's own run_dir,
// reported as coming from preset_source) <- overrides ("key=value"); each key checked against the schema as it
// is set, then every value against its range and the rules between keys.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides,
                      const nlohmann::json& preset = nlohmann::json::object(), const std::string& preset_source = "");
// Checks every value against its range and the rules between keys, for a config built or edited in code (train()
// and evaluate_run call it). An error names the key, its value, the allowed values and how to fix it.
void validate_config(const RunConfig& config);
// The flat key: value object (the run folder's config.json, and what the dataset formats read their keys from).
nlohmann::json to_json(const RunConfig& config);

// ---- what the programs derive from it ----
// The train or validation dataset of the config; its class count must agree with classes.
std::shared_ptr<Dataset> open_config_dataset(const RunConfig& config, bool train);
// The running part applied: the thread count, the CPU GEMM and profiling set, and the device chosen (a note on
// stderr when verbose and auto chose, or a GPU is missing).
Device use_running_config(const RunConfig& config, bool verbose);

}  // namespace strata::pspnet
