// The config schema, loading, validation and the typed RunConfig (see config.h).
#include "models/pspnet/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

#include "data/contextscenes.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/device.h"
#include "framework/parallel.h"
#include "framework/profile.h"
#include "layers/conv2d_winograd.h"

namespace strata::pspnet {

namespace {

constexpr double kIntMax = 2147483647.0;    // the programs read most integer keys as int
constexpr double kExactMax = 9007199254740992.0;  // 2^53: larger integers are not exact in a double

using Json = nlohmann::json;
using Origins = std::map<std::string, std::string>;  // key -> where its value was set ("command line", a file)

// Builders that keep the schema table below to one line of facts per key.
// A key that only a dataset format reads (data/dataset.h): carried in DataConfig::format_options.
KeySpec format_key(const char* group, const char* name, KeyType type, Json default_value, const char* meaning) {
    KeySpec s;
    s.group = group;
    s.name = name;
    s.type = type;
    s.default_value = std::move(default_value);
    s.meaning = meaning;
    if (type == KeyType::kInt || type == KeyType::kIntList) s.max = kIntMax;
    return s;
}
// A key that fills a field of RunConfig; its type is the field's.
KeySpec key(const char* group, const char* name, Field (*field)(RunConfig&), Json default_value, const char* meaning) {
    // the key types in the order of Field's alternatives (int and int64_t are both integers)
    const KeyType types[] = {KeyType::kInt, KeyType::kInt, KeyType::kNumber, KeyType::kBool, KeyType::kString,
                             KeyType::kIntList, KeyType::kNumberList, KeyType::kStringList};
    RunConfig scratch{};
    KeySpec s = format_key(group, name, types[field(scratch).index()], std::move(default_value), meaning);
    s.field = field;
    return s;
}
KeySpec at_least(KeySpec s, double min) { s.min = min; return s; }
KeySpec above(KeySpec s, double min) { s.min = min; s.min_open = true; return s; }
KeySpec at_most(KeySpec s, double max) { s.max = max; return s; }
KeySpec below(KeySpec s, double max) { s.max = max; s.max_open = true; return s; }
KeySpec one_of(KeySpec s, std::vector<Json> choices) { s.choices = std::move(choices); return s; }
KeySpec non_empty(KeySpec s) { s.non_empty = true; return s; }

constexpr KeyType kInt = KeyType::kInt, kString = KeyType::kString;

// FIELD(train.base_lr): the function that gives a key's field in a RunConfig, here &config.train.base_lr.
#define FIELD(path) [](RunConfig& c) -> Field { return &c.path; }

std::vector<KeySpec> make_schema() {
    const ContextScenesConfig scenes;  // the generator's defaults are the keys' defaults (data/contextscenes.h)
    // the registered dataset formats (data/dataset.h): the schema is built on first use, after static
    // initialisation has run every format's registrar
    const std::vector<std::string> formats = dataset_formats();
    const char* M = "model (semseg's PSPNet-50)";
    const char* D = "data";
    const char* T = "training (semseg: SGD momentum 0.9, wd 1e-4, base LR 0.01, poly 0.9, 10x LR for the heads)";
    const char* W = "weights";
    const char* R = "running";
    const char* E = "evaluation (semseg's test.py)";
    return {
        // ---- model ----
        one_of(key(M, "depth", FIELD(model.backbone.depth), 50,
                   "ResNet depth: 18, 34 (BasicBlock), 50, 101, 152 (Bottleneck)"), {18, 34, 50, 101, 152}),
        at_least(key(M, "blocks", FIELD(model.backbone.blocks), Json::array(),
                     "blocks per stage, 4 numbers (the first two >= 1); [] = the standard counts for depth"), 0),
        above(key(M, "width", FIELD(model.backbone.width), 1.0, "channel multiplier (small CPU variants)"), 0),
        key(M, "deep_stem", FIELD(model.backbone.deep_stem), true, "semseg's 3x(3x3) stem; false = torchvision's 7x7"),
        one_of(key(M, "output_stride", FIELD(model.backbone.output_stride), 8, "8 (layer3/4 dilated 2/4) or 16"),
               {8, 16}),
        at_least(key(M, "classes", FIELD(model.classes), 21, "number of classes the model predicts"), 1),
        non_empty(key(M, "context", FIELD(model.context), "ppm",
                      "the context module before the classifier, by name: ppm (pyramid pooling), none (the "
                      "dilated-FCN baseline), or one a plugin registers (--list-layers lists them)")),
        at_least(key(M, "bins", FIELD(model.bins), Json::array({1, 2, 3, 6}),
                     "pyramid pooling bin sizes (non-empty with context=ppm)"), 1),
        below(at_least(key(M, "dropout", FIELD(model.dropout), 0.1, "dropout before the classifiers"), 0), 1),
        one_of(key(M, "zoom_factor", FIELD(model.zoom_factor), 8,
                   "logits upsampled by this factor (8 = back to the input size)"), {1, 2, 4, 8}),
        at_least(key(M, "aux_weight", FIELD(model.aux_weight), 0.4,
                     "weight of the auxiliary loss; 0 disables the auxiliary head"), 0),
        // ---- data ----
        one_of(key(D, "dataset", FIELD(data.format), "voc", "dataset format"),
               std::vector<Json>(formats.begin(), formats.end())),
        key(D, "data_root", FIELD(data.root), "",
            "the dataset's folder (e.g. /data/VOCdevkit/VOC2012); contextscenes: unused"),
        non_empty(key(D, "train_split", FIELD(data.train_split), "train",
                      "voc: ImageSets/Segmentation/<split>.txt (train, trainval, train_aug); list: a list file")),
        non_empty(key(D, "val_split", FIELD(data.val_split), "val", "the split eval and the end of training score")),
        at_most(at_least(key(D, "ignore_label", FIELD(data.ignore_label), 255,
                             "label value that is not scored (void); not a class index"), 0), 255),
        key(D, "class_names", FIELD(data.class_names), Json::array(), "one name per class; [] = the dataset's names"),
        non_empty(format_key(D, "label_dir", kString, "SegmentationClass",
                             "voc: SegmentationClass (the VOC tarball) or SegmentationClassAug (SBD, for train_aug)")),
        format_key(D, "names_file", kString, "", "list: class names, one per line"),
        one_of(format_key(D, "label_mapping", kString, "none", "list: how label values are mapped"),
               {"none", "cityscapes_ids", "ade20k_reduce_zero"}),
        at_least(format_key(D, "scene_size", kInt, scenes.size, "contextscenes (generated in memory): image size"), 1),
        at_least(format_key(D, "scene_min_gap", kInt, scenes.min_gap,
                            "contextscenes: rows between the scene band and the objects"), 0),
        at_least(format_key(D, "scene_train", kInt, scenes.train_count, "contextscenes: training images"), 1),
        at_least(format_key(D, "scene_val", kInt, scenes.val_count, "contextscenes: validation images"), 1),
        at_least(key(D, "train_h", FIELD(data.train_h), 473,
                     "training crop height, of the form 8k+1 (16k+1 at output_stride 16)"), 1),
        at_least(key(D, "train_w", FIELD(data.train_w), 473,
                     "training crop width, of the form 8k+1 (16k+1 at output_stride 16)"), 1),
        above(key(D, "scale_min", FIELD(data.scale_min), 0.5, "random scaling: smallest factor"), 0),
        above(key(D, "scale_max", FIELD(data.scale_max), 2.0, "random scaling: largest factor (>= scale_min)"), 0),
        at_most(at_least(key(D, "rotate_min", FIELD(data.rotate_min), -10.0,
                             "random rotation: smallest angle in degrees"), -180), 180),
        at_most(at_least(key(D, "rotate_max", FIELD(data.rotate_max), 10.0,
                             "random rotation: largest angle (>= rotate_min)"), -180), 180),
        key(D, "blur", FIELD(data.blur), true, "random Gaussian blur (probability 0.5)"),
        key(D, "flip", FIELD(data.flip), true, "random horizontal flip (probability 0.5)"),
        at_least(key(D, "workers", FIELD(data.workers), 2, "loader threads (0 = load in the training thread)"), 0),
        at_most(at_least(key(D, "max_image_pixels", FIELD(data.max_image_pixels), 100000000,
                             "largest width*height an image or label file may claim (checked before reading it)"),
                         1), kExactMax),
        // ---- training ----
        at_least(key(T, "batch_size", FIELD(train.batch_size), 16, "images per training step"), 1),
        at_least(key(T, "iterations", FIELD(train.iterations), 30000, "training steps"), 1),
        above(key(T, "base_lr", FIELD(train.base_lr), 0.01,
                  "learning rate at step 0 (the backbone's; the heads get head_lr_mult x)"), 0),
        above(key(T, "head_lr_mult", FIELD(train.head_lr_mult), 10.0,
                  "LR multiplier of the context module (PPM) and the heads"), 0),
        above(key(T, "power", FIELD(train.power), 0.9, "poly: lr = base_lr * (1 - iteration/iterations)^power"), 0),
        below(at_least(key(T, "momentum", FIELD(train.momentum), 0.9, "SGD momentum"), 0), 1),
        at_least(key(T, "weight_decay", FIELD(train.weight_decay), 1e-4, "SGD weight decay (L2)"), 0),
        at_most(at_least(key(T, "seed", FIELD(train.seed), 0,
                             "random seed (initialisation, augmentation, data order)"), 0), kExactMax),
        at_least(key(T, "log_every", FIELD(train.log_every), 20, "log a metrics line every N iterations"), 1),
        at_least(key(T, "save_every", FIELD(train.save_every), 1000,
                     "checkpoint every N iterations (0 = only at the end and on Ctrl-C)"), 0),
        at_least(key(T, "eval_every", FIELD(train.eval_every), 0, "evaluate every N steps (0 = only at the end)"), 0),
        key(T, "tensorboard", FIELD(train.tensorboard), true,
            "also write the scalars as TensorBoard event files under <run_dir>/tensorboard"),
        // ---- weights ----
        key(W, "weights", FIELD(weights.path), "",
            "initial weights (safetensors), e.g. a converted ImageNet backbone; eval/infer: the weights to use "
            "(\"\" = <run_dir>/model.safetensors)"),
        key(W, "allow_nonfinite_weights", FIELD(weights.options.allow_nonfinite), false,
            "load weights that hold NaN/Inf instead of refusing"),
        key(W, "weights_skip_mismatched", FIELD(weights.options.skip_mismatched), false,
            "fine-tuning: tensors of weights= whose shape differs from the model's are skipped and named"),
        key(W, "allow_unmatched_weights", FIELD(weights.options.allow_unmatched), false,
            "accept a weights= file that matches none of the model's tensors"),
        // ---- running ----
        key(R, "device", FIELD(device), "cpu", "where to run: cpu, cuda, cuda:N, or auto (a GPU when there is one)"),
        at_least(key(R, "threads", FIELD(threads), 0, "CPU threads (0 = all cores)"), 0),
        key(R, "plugins", FIELD(plugins), Json::array(),
            "plugins to load (.so files, docs/plugins.md), as --plugin does"),
        key(R, "reproducible", FIELD(reproducible), false,
            "GEMMs on the fixed-order kernel: the same bits on every CPU and BLAS"),
        one_of(key(R, "gemm", FIELD(gemm), "strata", "CPU GEMM: strata (own kernels, by CPU features) or openblas"),
               {"strata", "openblas"}),
        one_of(key(R, "conv_algo", FIELD(conv_algo), "auto",
                   "CPU stride-1 3x3 convs: auto (Winograd where it wins), winograd, or gemm (implicit GEMM)"),
               {"auto", "winograd", "gemm"}),
        key(R, "profile", FIELD(profile), false,
            "print seconds and GFLOP/s per kernel and the share outside GEMM at exit"),
        key(R, "sync_bn", FIELD(sync_bn), true,
            "data parallel (mpirun): batch norm statistics of the global batch, over every rank"),
        at_least(key(R, "collective_timeout", FIELD(collective_timeout), 0.0,
                     "data parallel: seconds a collective waits for the other ranks (0 = STRATA_COLLECTIVE_TIMEOUT "
                     "or 300)"), 0),
        one_of(key(R, "communicator", FIELD(communicator), "auto",
                   "data parallel: what carries the collectives: nccl (GPUs; the CUDA build), mpi, or auto (nccl "
                   "when device is a GPU and the build has it, else mpi)"), {"auto", "mpi", "nccl"}),
        at_most(above(key(R, "bucket_mb", FIELD(bucket_mb), 25.0,
                          "data parallel: MiB of gradients per all-reduce, launched during the backward as each "
                          "bucket's gradients are final (smaller: earlier overlap, more messages)"), 0), 4096),
        non_empty(key(R, "run_dir", FIELD(run_dir), "runs/pspnet",
                      "the run folder: config.json, metrics, checkpoints, weights, evaluation")),
        // ---- evaluation ----
        one_of(key(E, "eval_mode", FIELD(eval.protocol.mode), "whole",
                   "whole (one forward per image) or slide (crop windows, stride 2/3 of a crop)"), {"whole", "slide"}),
        at_least(key(E, "test_h", FIELD(eval.protocol.crop_h), 473, "slide: window height"), 1),
        at_least(key(E, "test_w", FIELD(eval.protocol.crop_w), 473, "slide: window width"), 1),
        at_least(key(E, "base_size", FIELD(eval.protocol.base_size), 512,
                     "slide: the long side is resized to base_size * scale first; 0 = keep"), 0),
        non_empty(above(key(E, "scales", FIELD(eval.protocol.scales), Json::array({1.0}),
                            "multi-scale: e.g. [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]"), 0)),
        key(E, "eval_flip", FIELD(eval.protocol.flip), false, "average with the horizontally flipped image"),
        at_least(key(E, "max_eval_images", FIELD(eval.max_images), 0,
                     "evaluate at most this many images (0 = the whole split)"), 0),
        at_least(key(E, "save_predictions", FIELD(eval.save_predictions), 8, "colourised predictions eval writes"), 0),
        key(E, "eval_output", FIELD(eval.output), "",
            "where eval writes its JSON; \"\" = <run_dir>/eval/<protocol>.json, named after mode, scales and flip"),
        at_least(key(E, "object_classes", FIELD(eval.object_classes), Json::array(),
                     "class indices among which eval also reports the accuracy (e.g. [5, 6, 7])"), 0),
    };
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1.
size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

// Does the value have the key's type? (An integer is a number; list elements are checked too.)
bool has_type(KeyType t, const Json& v) {
    auto all = [&](auto ok) {
        if (!v.is_array()) return false;
        for (const Json& e : v)
            if (!ok(e)) return false;
        return true;
    };
    switch (t) {
        case KeyType::kInt: return v.is_number_integer();
        case KeyType::kNumber: return v.is_number();
        case KeyType::kBool: return v.is_boolean();
        case KeyType::kString: return v.is_string();
        case KeyType::kIntList: return all([](const Json& e) { return e.is_number_integer(); });
        case KeyType::kNumberList: return all([](const Json& e) { return e.is_number(); });
        case KeyType::kStringList: return all([](const Json& e) { return e.is_string(); });
    }
    return false;
}

std::string unknown_key_message(const std::string& key, const std::string& source) {
    std::vector<std::string> near = nearest_keys(key);
    std::string hint;
    for (size_t i = 0; i < near.size(); ++i)
        hint += (i == 0 ? "" : i + 1 == near.size() ? " or " : ", ") + ("'" + near[i] + "'");
    return str(source, ": unknown config key '", key, "'; ",
               hint.empty() ? std::string("no key has a similar name") : "did you mean " + hint + "?",
               " (--help lists every key with its type, default and meaning)");
}

// Keys that are gone, with what replaced them: an old config gets the fix, not "unknown key".
const std::map<std::string, std::string> kReplacedKeys = {
    {"use_ppm", "the context module is chosen by name now: use context=ppm for use_ppm=true (the default) and "
                "context=none for use_ppm=false (the dilated-FCN baseline)"},
};

void set_key(Json& config, Origins& origins, const std::string& key, const Json& value, const std::string& source) {
    auto replaced = kReplacedKeys.find(key);
    STRATA_CHECK(replaced == kReplacedKeys.end(), source, ": config key '", key, "' was replaced: ", replaced->second);
    const KeySpec* spec = find_key(key);
    if (spec == nullptr) STRATA_FAIL(unknown_key_message(key, source));
    STRATA_CHECK(has_type(spec->type, value), source, ": config key '", key, "' must be ", type_name(spec->type),
                 ", got ", value.dump(), " (", key, ": ", spec->meaning, "; default ", spec->default_value.dump(), ")");
    config[key] = value;
    origins[key] = source;
}

void merge_into(Json& config, Origins& origins, const Json& update, const std::string& source) {
    STRATA_CHECK(update.is_object(), source, ": a config must be a JSON object of key: value pairs");
    for (auto it = update.begin(); it != update.end(); ++it) set_key(config, origins, it.key(), it.value(), source);
}

std::pair<std::string, Json> split_override(const std::string& key_value) {
    size_t eq = key_value.find('=');
    STRATA_CHECK(eq != std::string::npos && eq > 0, "command line: expected key=value, got '", key_value, "'");
    std::string text = key_value.substr(eq + 1);
    std::string key = key_value.substr(0, eq);
    Json value = Json::parse(text, nullptr, false);
    if (value.is_discarded()) value = text;  // not JSON: a plain string such as a path or a device name
    // A list of strings may be written without quotes, plugins=[a.so,b.so]: in ARGS="..." or a Makefile recipe the
    // shell would strip them anyway.
    const KeySpec* spec = find_key(key);
    if (value.is_string() && spec && spec->type == KeyType::kStringList && text.size() >= 2 && text.front() == '[' &&
        text.back() == ']') {
        value = Json::array();
        std::stringstream items(text.substr(1, text.size() - 2));
        for (std::string item; std::getline(items, item, ',');) {
            item.erase(0, item.find_first_not_of(" "));
            item.erase(item.find_last_not_of(" ") + 1);
            if (!item.empty()) value.push_back(item);
        }
    }
    return {key, value};
}

// Reads a config file; a key given twice in one object is an error (JSON parsers silently keep the last one).
Json read_config_file(const std::string& path) {
    std::error_code ec;
    STRATA_CHECK(!std::filesystem::is_directory(path, ec), "'", path, "' is a folder, not a config file; eval and "
                 "infer take a run folder (one written by train, holding config.json), train takes a .json file");
    std::ifstream in(path);
    STRATA_CHECK(in.good(), "cannot open config file '", path, "'");
    std::stringstream text;
    text << in.rdbuf();
    std::vector<std::set<std::string>> open_objects;  // the keys seen so far in each object being parsed
    auto check_duplicates = [&](int, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::object_start) open_objects.emplace_back();
        if (event == Json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
        if (event == Json::parse_event_t::key && !open_objects.empty()) {
            std::string k = parsed.get<std::string>();
            STRATA_CHECK(open_objects.back().insert(k).second, path, ": config key '", k, "' is given twice; JSON "
                         "keeps only the last value, so one of the two would be silently ignored. Keep one of them");
        }
        return true;
    };
    try {
        return Json::parse(text.str(), check_duplicates, true, true);  // comments allowed
    } catch (const nlohmann::json::exception& e) {
        STRATA_FAIL(path, ": not valid JSON (", e.what(), ")");
    }
}

// ---- validation ----

std::string origin_of(const Origins& origins, const std::string& key) {
    auto it = origins.find(key);
    if (it == origins.end()) return "";
    return it->second == "command line" ? " (set on the command line)" : " (set in " + it->second + ")";
}

bool in_range(const KeySpec& s, double v) {
    if (!std::isfinite(v)) return false;
    if (s.min_open ? !(v > s.min) : !(v >= s.min)) return false;
    if (s.max_open ? !(v < s.max) : !(v <= s.max)) return false;
    return true;
}

[[noreturn]] void fail_value(const KeySpec& s, const Json& value, const Origins& origins, const std::string& problem) {
    STRATA_FAIL(str("config key '", s.name, "' is ", value.dump(), origin_of(origins, s.name), ", ", problem, " (",
                    s.name, ": ", s.meaning, "). Set it to ", allowed_values(s), ", e.g. ", s.name, "=",
                    s.default_value.dump(), " (the default)"));
}

void check_value(const KeySpec& s, const Json& v, const Origins& origins) {
    if (!has_type(s.type, v))
        fail_value(s, v, origins, "but it must be " + type_name(s.type));
    bool empty = v.is_string() ? v.get<std::string>().empty() : v.is_array() && v.empty();
    if (s.non_empty && empty) fail_value(s, v, origins, "which is empty");
    if (!s.choices.empty() && std::find(s.choices.begin(), s.choices.end(), v) == s.choices.end())
        fail_value(s, v, origins, "which is not one of the allowed values");
    bool numeric = s.type == KeyType::kInt || s.type == KeyType::kNumber || s.type == KeyType::kIntList ||
                   s.type == KeyType::kNumberList;
    if (!numeric) return;
    for (const Json& e : v.is_array() ? v : Json::array({v})) {
        double x = e.get<double>();
        if ((s.max == kIntMax || s.max == kExactMax) && x > s.max)  // a bound --help does not mention
            fail_value(s, v, origins, str("which is larger than ", int64_t(s.max), ", the largest value it can hold"));
        if (!in_range(s, x))
            fail_value(s, v, origins, v.is_array() ? str("and its element ", e.dump(), " is out of range")
                                                  : "which is out of range");
    }
}

void check_device(const std::string& d, const Origins& origins) {
    bool ok = std::regex_match(d, std::regex("cpu|cuda|auto|cuda:[0-9]{1,4}"));
    STRATA_CHECK(ok, "config key 'device' is \"", d, "\"", origin_of(origins, "device"), ": unknown device '", d,
                 "'. Set it to cpu, cuda, cuda:N (N = 0, 1, ...: the GPU's index) or auto (a GPU when there is one)");
}

// The smallest crop whose feature map (1/output_stride of it) has at least as many cells as the largest pyramid
// bin pools it into (at least 2 cells without the PPM): below that the pyramid has nothing to pool.
int64_t smallest_crop(const PSPNetConfig& m, int64_t* cells) {
    int64_t need = 2;
    if (m.context == "ppm")
        for (int64_t b : m.bins) need = std::max(need, b);
    *cells = need;
    return (need - 1) * m.backbone.output_stride + 1;
}

void check_crop(const PSPNetConfig& m, const Origins& origins, const std::string& key, int64_t size, bool training) {
    int64_t os = m.backbone.output_stride, cells = 0;
    if (training && m.zoom_factor == 8 && (size - 1) % os != 0) {
        int64_t lower = (size - 1) / os * os + 1;
        STRATA_FAIL("config key '", key, "' is ", size, origin_of(origins, key), ": train_h and train_w must be of the "
                    "form ", os, "k+1 (", os == 8 ? "473, 713, 97, ..." : "465, 705, 97, ...", ") with output_stride ",
                    os, ", so that the upsampled logits match the label crop; the nearest valid values are ", lower,
                    " and ", lower + os);
    }
    int64_t least = smallest_crop(m, &cells);
    STRATA_CHECK(size >= least, "config key '", key, "' is ", size, origin_of(origins, key), ", too small: the "
                 "backbone's feature map (1/", os, " of the ", training ? "training crop" : "sliding window", ") would "
                 "be ", (size - 1) / os + 1, " cells across, fewer than ", cells,
                 m.context == "ppm" ? " (the largest pyramid bin in bins)" : "", ". Use ", key, " >= ", least,
                 m.context == "ppm" ? " (or smaller bins)" : "");
}

// Every value within its key's range: checked on the flat keys (all of them, each of its type) before they fill the
// typed fields, whose integers may be narrower than the JSON's.
void check_values(const Json& c, const Origins& origins) {
    for (const KeySpec& s : config_schema()) check_value(s, c.at(s.name), origins);
}

// The rules between keys: the one place that says which values go together.
void check_rules(const RunConfig& c, const Origins& origins) {
    auto from = [&](const char* key) { return origin_of(origins, key); };
    check_device(c.device, origins);

    // the model
    const PSPNetConfig& m = c.model;
    const std::vector<int64_t>& blocks = m.backbone.blocks;
    STRATA_CHECK(blocks.empty() || (blocks.size() == 4 && blocks[0] >= 1 && blocks[1] >= 1), "config key 'blocks' is ",
                 Json(blocks).dump(), from("blocks"), ": it must be [] (the standard counts for depth) or 4 block "
                 "counts, the first two at least 1 (layer1 and layer2 hold the stem's output), e.g. blocks=[1,1,0,0]");
    STRATA_CHECK(m.context != "ppm" || !m.bins.empty(), "config key 'bins' is []", from("bins"),
                 ": the pyramid pooling module (context=ppm) needs at least one bin; set bins=[1,2,3,6] or "
                 "context=none");
    // The context module's name is checked where the model is built (create_context, models/pspnet/context.h):
    // plugins, which may register it, are loaded after the config is read.

    // the labels against the classes
    int64_t classes = m.classes, ignore = c.data.ignore_label;
    STRATA_CHECK(ignore >= classes, "config key 'ignore_label' is ", ignore, from("ignore_label"), ", which is class ",
                 ignore, " of the ", classes, " classes (0..", classes - 1, "): its pixels would never be scored. "
                 "Use a value >= classes, e.g. ignore_label=255 (VOC's void)");
    size_t names = c.data.class_names.size();
    STRATA_CHECK(names == 0 || int64_t(names) == classes, "config key 'class_names' lists ", names, " names",
                 from("class_names"), " but classes is ", classes, from("classes"),
                 ": give one name per class, or [] for the dataset's own names");
    std::set<int64_t> objects;
    for (int64_t k : c.eval.object_classes) {
        STRATA_CHECK(k < classes, "config key 'object_classes' holds ", k, from("object_classes"),
                     ", which is not a class: classes is ", classes, ", so the indices are 0..", classes - 1);
        STRATA_CHECK(objects.insert(k).second, "config key 'object_classes' lists class ", k, " twice",
                     from("object_classes"), "; list each class once");
    }

    // augmentation and crops
    const DataConfig& d = c.data;
    STRATA_CHECK(d.scale_min <= d.scale_max, "config keys 'scale_min' and 'scale_max' are ", d.scale_min,
                 from("scale_min"), " and ", d.scale_max, from("scale_max"),
                 ": scale_min must be <= scale_max (equal = a fixed scale)");
    STRATA_CHECK(d.rotate_min <= d.rotate_max, "config keys 'rotate_min' and 'rotate_max' are ", d.rotate_min,
                 from("rotate_min"), " and ", d.rotate_max, from("rotate_max"),
                 ": rotate_min must be <= rotate_max (equal = a fixed angle)");
    check_crop(m, origins, "train_h", d.train_h, true);
    check_crop(m, origins, "train_w", d.train_w, true);
    if (c.eval.protocol.mode == "slide") {
        check_crop(m, origins, "test_h", c.eval.protocol.crop_h, false);
        check_crop(m, origins, "test_w", c.eval.protocol.crop_w, false);
    }
}

// The typed config of flat keys that check_values passed.
RunConfig from_json(const Json& j) {
    RunConfig c{};
    c.data.format_options = Json::object();
    for (const KeySpec& s : config_schema()) {
        const Json& v = j.at(s.name);
        if (s.field) std::visit([&](auto* field) { v.get_to(*field); }, s.field(c));
        else c.data.format_options[s.name] = v;
    }
    return c;
}

Json defaults_json() {
    Json config = Json::object();
    for (const KeySpec& s : config_schema()) config[s.name] = s.default_value;
    return config;
}

}  // namespace

std::string format_number(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

const std::vector<KeySpec>& config_schema() {
    static const std::vector<KeySpec> schema = make_schema();
    return schema;
}

const KeySpec* find_key(const std::string& name) {
    for (const KeySpec& s : config_schema())
        if (s.name == name) return &s;
    return nullptr;
}

std::string type_name(KeyType type) {
    switch (type) {
        case KeyType::kInt: return "an integer";
        case KeyType::kNumber: return "a number";
        case KeyType::kBool: return "true or false";
        case KeyType::kString: return "a string";
        case KeyType::kIntList: return "a list of integers";
        case KeyType::kNumberList: return "a list of numbers";
        case KeyType::kStringList: return "a list of strings";
    }
    return "?";
}

std::string allowed_values(const KeySpec& s) {
    if (s.name == "device") return "one of cpu, cuda, cuda:N, auto (a string)";
    if (!s.choices.empty()) {
        std::string list;
        for (const Json& c : s.choices) list += (list.empty() ? "" : ", ") + (c.is_string() ? c.get<std::string>()
                                                                                             : c.dump());
        return "one of " + list + " (" + type_name(s.type) + ")";
    }
    std::string text = type_name(s.type);
    if (s.non_empty) text = "a non-empty " + text.substr(text.find(' ') + 1);  // "a list ..." -> "a non-empty list ..."
    bool has_min = std::isfinite(s.min);
    bool has_max = std::isfinite(s.max) && s.max != kIntMax && s.max != kExactMax;
    std::string lo = (s.min_open ? "(" : "[") + format_number(s.min);
    std::string hi = format_number(s.max) + (s.max_open ? ")" : "]");
    if (has_min && has_max) return text + " in " + lo + ", " + hi;
    if (has_min) return text + (s.min_open ? " > " : " >= ") + format_number(s.min);
    if (has_max) return text + (s.max_open ? " < " : " <= ") + format_number(s.max);
    return text;
}

std::vector<std::string> nearest_keys(const std::string& key, size_t count) {
    std::string typed = lower(key);
    std::vector<std::pair<size_t, std::string>> near;
    for (const KeySpec& s : config_schema()) {
        size_t d = edit_distance(typed, s.name);
        // close spellings (about one edit in three letters), or one name inside the other ("lr" in base_lr)
        bool close = d <= std::max<size_t>(1, typed.size() / 3);
        bool inside = typed.size() >= 2 && (s.name.find(typed) != std::string::npos ||
                                            (s.name.size() >= 4 && typed.find(s.name) != std::string::npos));
        if (close || inside) near.push_back({close ? d : 100, s.name});
    }
    std::stable_sort(near.begin(), near.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> names;
    for (size_t i = 0; i < near.size() && i < count; ++i) names.push_back(near[i].second);
    return names;
}

std::string config_help() {
    std::ostringstream out;
    out << "Config keys (set in a config file, or on the command line as key=value; the JSON types apply):\n";
    std::string group;
    for (const KeySpec& s : config_schema()) {
        if (s.group != group) {
            group = s.group;
            out << "\n  " << group << "\n";
        }
        out << "    " << s.name << "  " << allowed_values(s) << "; default " << s.default_value.dump() << "\n"
            << "        " << s.meaning << "\n";
    }
    return out.str();
}

RunConfig default_config() { return from_json(defaults_json()); }

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides, const Json& preset,
                      const std::string& preset_source) {
    Json config = defaults_json();
    Origins origins;
    if (!path.empty()) merge_into(config, origins, read_config_file(path), path);
    if (!preset.empty()) merge_into(config, origins, preset, preset_source);
    for (const std::string& o : overrides) {
        auto [key, value] = split_override(o);
        set_key(config, origins, key, value, "command line");
    }
    check_values(config, origins);
    RunConfig c = from_json(config);
    check_rules(c, origins);
    return c;
}

void validate_config(const RunConfig& c) {
    check_values(to_json(c), {});
    check_rules(c, {});
}

Json to_json(const RunConfig& config) {
    RunConfig c = config;  // a copy: the schema's field functions take a RunConfig they may write
    Json j = Json::object();
    for (const KeySpec& s : config_schema()) {
        if (s.field) j[s.name] = std::visit([](auto* field) { return Json(*field); }, s.field(c));
        else j[s.name] = c.data.format_options.value(s.name, s.default_value);
    }
    return j;
}

std::shared_ptr<Dataset> open_config_dataset(const RunConfig& c, bool train) {
    // the format reads its own keys from the flat config (data/dataset.h)
    std::shared_ptr<Dataset> ds = open_dataset(c.data.format, train ? c.data.train_split : c.data.val_split,
                                               to_json(c));
    STRATA_CHECK(ds->size() > 0, ds->description(), " is empty");
    STRATA_CHECK(ds->num_classes() == 0 || ds->num_classes() == c.model.classes, "config: classes = ",
                 c.model.classes, " but ", ds->description(), " has ", ds->num_classes(), " classes; set classes=",
                 ds->num_classes());
    return ds;
}

Device use_running_config(const RunConfig& c, bool verbose) {
    if (c.threads > 0) set_num_threads(c.threads);
    set_gemm_choice(parse_gemm_choice(c.gemm));
    set_conv2d_algo(parse_conv2d_algo(c.conv_algo));
    if (c.profile) set_profiling(true);
    std::string note;
    Device device = select_device(c.device, &note);
    if (verbose && !note.empty()) std::cerr << note << "\n";
    return device;
}

}  // namespace strata::pspnet
