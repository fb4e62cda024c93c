// The config schema, loading and validation (see config.h).
#include "models/pspnet/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "data/contextscenes.h"
#include "data/dataset.h"
#include "framework/check.h"

namespace strata::pspnet {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kIntMax = 2147483647.0;    // the programs read most integer keys as int
constexpr double kExactMax = 9007199254740992.0;  // 2^53: larger integers are not exact in a double

using Json = nlohmann::json;

// Builders that keep the schema table below to one line of facts per key.
KeySpec key(const char* group, const char* name, KeyType type, Json default_value, const char* meaning) {
    KeySpec s;
    s.group = group;
    s.name = name;
    s.type = type;
    s.default_value = std::move(default_value);
    s.meaning = meaning;
    if (type == KeyType::kInt || type == KeyType::kIntList) s.max = kIntMax;
    return s;
}
KeySpec at_least(KeySpec s, double min) {
    s.min = min;
    return s;
}
KeySpec above(KeySpec s, double min) {
    s.min = min;
    s.min_open = true;
    return s;
}
KeySpec at_most(KeySpec s, double max) {
    s.max = max;
    return s;
}
KeySpec below(KeySpec s, double max) {
    s.max = max;
    s.max_open = true;
    return s;
}
KeySpec one_of(KeySpec s, std::vector<Json> choices) {
    s.choices = std::move(choices);
    return s;
}
KeySpec non_empty(KeySpec s) {
    s.non_empty = true;
    return s;
}

constexpr KeyType kInt = KeyType::kInt, kNumber = KeyType::kNumber, kBool = KeyType::kBool,
                  kString = KeyType::kString, kIntList = KeyType::kIntList, kNumberList = KeyType::kNumberList,
                  kStringList = KeyType::kStringList;

// The registered dataset formats (data/dataset.h). The schema is built on first use, after static initialisation
// has run every format's registrar.
std::vector<Json> dataset_format_choices() {
    std::vector<Json> choices;
    for (const std::string& name : dataset_formats()) choices.push_back(name);
    return choices;
}

std::vector<KeySpec> make_schema() {
    const ContextScenesConfig scenes;  // the generator's defaults are the keys' defaults (data/contextscenes.h)
    const char* M = "model (semseg's PSPNet-50)";
    const char* D = "data";
    const char* O = "optimisation (semseg: SGD momentum 0.9, wd 1e-4, base LR 0.01, poly 0.9, 10x LR for the heads)";
    const char* R = "running";
    const char* E = "evaluation (semseg's test.py)";
    std::vector<KeySpec> s = {
        // ---- model ----
        one_of(key(M, "depth", kInt, 50, "ResNet depth: 18, 34 (BasicBlock), 50, 101, 152 (Bottleneck)"),
               {18, 34, 50, 101, 152}),
        at_least(key(M, "blocks", kIntList, Json::array(),
                     "blocks per stage, 4 numbers (the first two >= 1); [] = the standard counts for depth"), 0),
        above(key(M, "width", kNumber, 1.0, "channel multiplier (small CPU variants)"), 0),
        key(M, "deep_stem", kBool, true, "semseg's 3x(3x3) stem; false = torchvision's 7x7"),
        one_of(key(M, "output_stride", kInt, 8, "8 (layer3/4 dilated 2/4) or 16"), {8, 16}),
        at_least(key(M, "classes", kInt, 21, "number of classes the model predicts"), 1),
        key(M, "use_ppm", kBool, true, "the pyramid pooling module; false = the dilated-FCN baseline without it"),
        at_least(key(M, "bins", kIntList, Json::array({1, 2, 3, 6}),
                     "pyramid pooling bin sizes (non-empty with use_ppm)"), 1),
        below(at_least(key(M, "dropout", kNumber, 0.1, "dropout before the classifiers"), 0), 1),
        one_of(key(M, "zoom_factor", kInt, 8, "logits upsampled by this factor (8 = back to the input size)"),
               {1, 2, 4, 8}),
        at_least(key(M, "aux_weight", kNumber, 0.4, "weight of the auxiliary loss; 0 disables the auxiliary head"), 0),
        at_most(at_least(key(M, "ignore_label", kInt, 255, "label value that is not scored (void); not a class index"),
                         0), 255),
        key(M, "class_names", kStringList, Json::array(), "one name per class; [] = the dataset's own names"),
        at_least(key(M, "object_classes", kIntList, Json::array(),
                     "class indices among which eval also reports the accuracy (e.g. [5, 6, 7])"), 0),
        // ---- data ----
        one_of(key(D, "dataset", kString, "voc", "dataset format"), dataset_format_choices()),
        key(D, "data_root", kString, "", "the dataset's folder (e.g. /data/VOCdevkit/VOC2012); contextscenes: unused"),
        non_empty(key(D, "train_split", kString, "train",
                      "voc: ImageSets/Segmentation/<split>.txt (train, trainval, train_aug); list: a list file")),
        non_empty(key(D, "val_split", kString, "val", "the split eval and the end of training evaluate on")),
        non_empty(key(D, "label_dir", kString, "SegmentationClass",
                      "voc: SegmentationClass (the VOC tarball) or SegmentationClassAug (SBD, for train_aug)")),
        key(D, "names_file", kString, "", "list: class names, one per line"),
        one_of(key(D, "label_mapping", kString, "none", "list: how label values are mapped"),
               {"none", "cityscapes_ids", "ade20k_reduce_zero"}),
        at_least(key(D, "scene_size", kInt, scenes.size, "contextscenes (generated in memory): image size"), 1),
        at_least(key(D, "scene_min_gap", kInt, scenes.min_gap,
                     "contextscenes: rows between the scene band and the objects"), 0),
        at_least(key(D, "scene_train", kInt, scenes.train_count, "contextscenes: training images"), 1),
        at_least(key(D, "scene_val", kInt, scenes.val_count, "contextscenes: validation images"), 1),
        at_least(key(D, "train_h", kInt, 473, "training crop height, of the form 8k+1 (16k+1 at output_stride 16)"), 1),
        at_least(key(D, "train_w", kInt, 473, "training crop width, of the form 8k+1 (16k+1 at output_stride 16)"), 1),
        above(key(D, "scale_min", kNumber, 0.5, "random scaling: smallest factor"), 0),
        above(key(D, "scale_max", kNumber, 2.0, "random scaling: largest factor (>= scale_min)"), 0),
        at_most(at_least(key(D, "rotate_min", kNumber, -10.0, "random rotation: smallest angle in degrees"), -180),
                180),
        at_most(at_least(key(D, "rotate_max", kNumber, 10.0, "random rotation: largest angle (>= rotate_min)"), -180),
                180),
        key(D, "blur", kBool, true, "random Gaussian blur (probability 0.5)"),
        key(D, "flip", kBool, true, "random horizontal flip (probability 0.5)"),
        at_least(key(D, "workers", kInt, 2, "loader threads (0 = load in the training thread)"), 0),
        at_most(at_least(key(D, "max_image_pixels", kInt, 100000000,
                             "largest width*height an image or label file may claim (checked before reading it)"),
                         1), kExactMax),
        // ---- optimisation ----
        at_least(key(O, "batch_size", kInt, 16, "images per training step"), 1),
        at_least(key(O, "iterations", kInt, 30000, "training steps"), 1),
        above(key(O, "base_lr", kNumber, 0.01,
                  "learning rate at step 0 (the backbone's; the heads get head_lr_mult x)"), 0),
        above(key(O, "head_lr_mult", kNumber, 10.0, "learning-rate multiplier of the PPM and the heads"), 0),
        above(key(O, "power", kNumber, 0.9, "poly schedule: lr = base_lr * (1 - iteration/iterations)^power"), 0),
        below(at_least(key(O, "momentum", kNumber, 0.9, "SGD momentum"), 0), 1),
        at_least(key(O, "weight_decay", kNumber, 1e-4, "SGD weight decay (L2)"), 0),
        at_most(at_least(key(O, "seed", kInt, 0, "random seed (initialisation, augmentation, data order)"), 0),
                kExactMax),
        key(O, "weights", kString, "",
            "initial weights (safetensors), e.g. a converted ImageNet backbone; eval/infer: the weights to use "
            "(\"\" = <run_dir>/model.safetensors)"),
        key(O, "allow_nonfinite_weights", kBool, false, "load weights that hold NaN/Inf instead of refusing"),
        key(O, "weights_skip_mismatched", kBool, false,
            "fine-tuning: tensors of weights= whose shape differs from the model's are skipped and named"),
        key(O, "allow_unmatched_weights", kBool, false,
            "accept a weights= file that matches none of the model's tensors"),
        // ---- running ----
        key(R, "device", kString, "cpu", "where to run: cpu, cuda, cuda:N, or auto (a GPU when there is one)"),
        at_least(key(R, "threads", kInt, 0, "CPU threads (0 = all cores)"), 0),
        key(R, "reproducible", kBool, false, "GEMMs on the fixed-order kernel: the same bits on every CPU and BLAS"),
        one_of(key(R, "gemm", kString, "strata", "CPU GEMM: strata (own kernels, by CPU features) or openblas"),
               {"strata", "openblas"}),
        key(R, "profile", kBool, false, "print seconds and GFLOP/s per kernel and the share outside GEMM at exit"),
        non_empty(key(R, "run_dir", kString, "runs/pspnet",
                      "the run folder: config.json, metrics, checkpoints, weights, evaluation")),
        at_least(key(R, "log_every", kInt, 20, "log a metrics line every N iterations"), 1),
        at_least(key(R, "save_every", kInt, 1000, "checkpoint every N iterations (0 = only at the end and on Ctrl-C)"),
                 0),
        at_least(key(R, "eval_every", kInt, 0, "evaluate every N iterations (0 = only at the end)"), 0),
        key(R, "tensorboard", kBool, true,
            "also write the scalars as TensorBoard event files under <run_dir>/tensorboard"),
        // ---- evaluation ----
        one_of(key(E, "eval_mode", kString, "whole",
                   "whole (one forward per image) or slide (crop windows with stride 2/3 of the crop)"),
               {"whole", "slide"}),
        at_least(key(E, "test_h", kInt, 473, "slide: window height"), 1),
        at_least(key(E, "test_w", kInt, 473, "slide: window width"), 1),
        at_least(key(E, "base_size", kInt, 512, "slide: the long side is resized to base_size * scale first; 0 = keep"),
                 0),
        non_empty(above(key(E, "scales", kNumberList, Json::array({1.0}),
                            "multi-scale: e.g. [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]"), 0)),
        key(E, "eval_flip", kBool, false, "average with the horizontally flipped image"),
        at_least(key(E, "max_eval_images", kInt, 0, "evaluate at most this many images (0 = the whole split)"), 0),
        at_least(key(E, "save_predictions", kInt, 8, "how many colourised predictions eval writes"), 0),
        key(E, "eval_output", kString, "",
            "where eval writes its JSON; \"\" = <run_dir>/eval/<protocol>.json, named after mode, scales and flip"),
    };
    return s;
}

std::string format_number(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
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

void set_key(Json& config, std::map<std::string, std::string>* origins, const std::string& key, const Json& value,
             const std::string& source) {
    const KeySpec* spec = find_key(key);
    if (spec == nullptr) STRATA_FAIL(unknown_key_message(key, source));
    STRATA_CHECK(has_type(spec->type, value), source, ": config key '", key, "' must be ", type_name(spec->type),
                 ", got ", value.dump(), " (", key, ": ", spec->meaning, "; default ", spec->default_value.dump(), ")");
    config[key] = value;
    if (origins) (*origins)[key] = source;
}

void merge_into(Json& config, std::map<std::string, std::string>* origins, const Json& update,
                const std::string& source) {
    STRATA_CHECK(update.is_object(), source, ": a config must be a JSON object of key: value pairs");
    for (auto it = update.begin(); it != update.end(); ++it) set_key(config, origins, it.key(), it.value(), source);
}

std::pair<std::string, Json> split_override(const std::string& key_value) {
    size_t eq = key_value.find('=');
    STRATA_CHECK(eq != std::string::npos && eq > 0, "command line: expected key=value, got '", key_value, "'");
    std::string text = key_value.substr(eq + 1);
    Json value = Json::parse(text, nullptr, false);
    if (value.is_discarded()) value = text;  // not JSON: a plain string such as a path or a device name
    return {key_value.substr(0, eq), value};
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

std::string origin_of(const std::map<std::string, std::string>& origins, const std::string& key) {
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

[[noreturn]] void fail_value(const KeySpec& s, const Json& value, const std::map<std::string, std::string>& origins,
                             const std::string& problem) {
    STRATA_FAIL(str("config key '", s.name, "' is ", value.dump(), origin_of(origins, s.name), ", ", problem, " (",
                    s.name, ": ", s.meaning, "). Set it to ", allowed_values(s), ", e.g. ", s.name, "=",
                    s.default_value.dump(), " (the default)"));
}

void check_value(const KeySpec& s, const Json& v, const std::map<std::string, std::string>& origins) {
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

void check_device(const Json& config, const std::map<std::string, std::string>& origins) {
    std::string d = config["device"];
    bool ok = d == "cpu" || d == "cuda" || d == "auto";
    if (d.rfind("cuda:", 0) == 0) {
        std::string index = d.substr(5);
        ok = !index.empty() && index.size() <= 4 && index.find_first_not_of("0123456789") == std::string::npos;
    }
    STRATA_CHECK(ok, "config key 'device' is \"", d, "\"", origin_of(origins, "device"), ": unknown device '", d,
                 "'. Set it to cpu, cuda, cuda:N (N = 0, 1, ...: the GPU's index) or auto (a GPU when there is one)");
}

// The smallest crop whose feature map (1/output_stride of it) has at least as many cells as the largest pyramid
// bin pools it into (at least 2 cells without the PPM): below that the pyramid has nothing to pool.
int64_t smallest_crop(const Json& c, int64_t* cells) {
    int64_t os = c["output_stride"];
    int64_t need = 2;
    if (c["use_ppm"].get<bool>())
        for (const Json& b : c["bins"]) need = std::max<int64_t>(need, b.get<int64_t>());
    *cells = need;
    return (need - 1) * os + 1;
}

void check_crop(const Json& c, const std::map<std::string, std::string>& origins, const std::string& key,
                bool training) {
    int64_t size = c[key], os = c["output_stride"], cells = 0;
    if (training && c["zoom_factor"] == 8 && (size - 1) % os != 0) {
        int64_t lower = (size - 1) / os * os + 1;
        STRATA_FAIL("config key '", key, "' is ", size, origin_of(origins, key), ": train_h and train_w must be of the "
                    "form ", os, "k+1 (", os == 8 ? "473, 713, 97, ..." : "465, 705, 97, ...", ") with output_stride ",
                    os, ", so that the upsampled logits match the label crop; the nearest valid values are ", lower,
                    " and ", lower + os);
    }
    int64_t least = smallest_crop(c, &cells);
    STRATA_CHECK(size >= least, "config key '", key, "' is ", size, origin_of(origins, key), ", too small: the "
                 "backbone's feature map (1/", os, " of the ", training ? "training crop" : "sliding window", ") would "
                 "be ", (size - 1) / os + 1, " cells across, fewer than ", cells,
                 c["use_ppm"].get<bool>() ? " (the largest pyramid bin in bins)" : "",
                 ". Use ", key, " >= ", least, c["use_ppm"].get<bool>() ? " (or smaller bins)" : "");
}

}  // namespace

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

Json default_config() {
    Json config = Json::object();
    for (const KeySpec& s : config_schema()) config[s.name] = s.default_value;
    return config;
}

void merge_config(Json& config, const Json& update, const std::string& source) {
    merge_into(config, nullptr, update, source);
}

void apply_override(Json& config, const std::string& key_value) {
    auto [key, value] = split_override(key_value);
    set_key(config, nullptr, key, value, "command line");
}

Json load_config(const std::string& path, const std::vector<std::string>& overrides, const Json& preset,
                 const std::string& preset_source) {
    Json config = default_config();
    std::map<std::string, std::string> origins;
    if (!path.empty()) merge_into(config, &origins, read_config_file(path), path);
    if (!preset.empty()) merge_into(config, &origins, preset, preset_source);
    for (const std::string& o : overrides) {
        auto [key, value] = split_override(o);
        set_key(config, &origins, key, value, "command line");
    }
    validate_config(config, origins);
    return config;
}

void validate_config(const Json& c, const std::map<std::string, std::string>& origins) {
    STRATA_CHECK(c.is_object(), "a config must be a JSON object of key: value pairs");
    for (auto it = c.begin(); it != c.end(); ++it)
        if (find_key(it.key()) == nullptr) STRATA_FAIL(unknown_key_message(it.key(), "config"));
    for (const KeySpec& s : config_schema()) {
        STRATA_CHECK(c.contains(s.name), "config: the key '", s.name, "' is missing (start from default_config())");
        check_value(s, c[s.name], origins);
    }
    check_device(c, origins);
    auto from = [&](const char* key) { return origin_of(origins, key); };

    // the model
    int64_t classes = c["classes"];
    const Json& blocks = c["blocks"];
    STRATA_CHECK(blocks.empty() || (blocks.size() == 4 && blocks[0] >= 1 && blocks[1] >= 1), "config key 'blocks' is ",
                 blocks.dump(), from("blocks"), ": it must be [] (the standard counts for depth) or 4 block counts, "
                 "the first two at least 1 (layer1 and layer2 hold the stem's output), e.g. blocks=[1,1,0,0]");
    STRATA_CHECK(!c["use_ppm"].get<bool>() || !c["bins"].empty(), "config key 'bins' is []", from("bins"),
                 ": the pyramid pooling module needs at least one bin; set bins=[1,2,3,6] or use_ppm=false");
    int64_t ignore = c["ignore_label"];
    STRATA_CHECK(ignore >= classes, "config key 'ignore_label' is ", ignore, from("ignore_label"), ", which is class ",
                 ignore, " of the ", classes, " classes (0..", classes - 1, "): its pixels would never be scored. "
                 "Use a value >= classes, e.g. ignore_label=255 (VOC's void)");
    const Json& names = c["class_names"];
    STRATA_CHECK(names.empty() || int64_t(names.size()) == classes, "config key 'class_names' lists ", names.size(),
                 " names", from("class_names"), " but classes is ", classes, from("classes"),
                 ": give one name per class, or [] for the dataset's own names");
    std::set<int64_t> objects;
    for (const Json& o : c["object_classes"]) {
        int64_t k = o;
        STRATA_CHECK(k < classes, "config key 'object_classes' holds ", k, from("object_classes"),
                     ", which is not a class: classes is ", classes, ", so the indices are 0..", classes - 1);
        STRATA_CHECK(objects.insert(k).second, "config key 'object_classes' lists class ", k, " twice",
                     from("object_classes"), "; list each class once");
    }

    // data and augmentation
    STRATA_CHECK(c["scale_min"].get<double>() <= c["scale_max"].get<double>(), "config keys 'scale_min' and "
                 "'scale_max' are ", c["scale_min"].dump(), from("scale_min"), " and ", c["scale_max"].dump(),
                 from("scale_max"), ": scale_min must be <= scale_max (equal = a fixed scale)");
    STRATA_CHECK(c["rotate_min"].get<double>() <= c["rotate_max"].get<double>(), "config keys 'rotate_min' and "
                 "'rotate_max' are ", c["rotate_min"].dump(), from("rotate_min"), " and ", c["rotate_max"].dump(),
                 from("rotate_max"), ": rotate_min must be <= rotate_max (equal = a fixed angle)");
    check_crop(c, origins, "train_h", true);
    check_crop(c, origins, "train_w", true);
    if (c["eval_mode"] == "slide") {
        check_crop(c, origins, "test_h", false);
        check_crop(c, origins, "test_w", false);
    }
}

PSPNetConfig model_config(const Json& c) {
    PSPNetConfig m;
    m.backbone.depth = c["depth"];
    m.backbone.blocks = c["blocks"].get<std::vector<int64_t>>();
    m.backbone.width = c["width"];
    m.backbone.deep_stem = c["deep_stem"];
    m.backbone.output_stride = c["output_stride"];
    m.classes = c["classes"];
    m.use_ppm = c["use_ppm"];
    m.bins = c["bins"].get<std::vector<int64_t>>();
    m.dropout = c["dropout"];
    m.zoom_factor = c["zoom_factor"];
    m.aux = c["aux_weight"].get<double>() > 0;
    return m;
}

}  // namespace strata::pspnet
