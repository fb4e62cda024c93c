// The config schema, loading and validation (see config.h).
#include "models/pspnet/config.h"

#include <fstream>
#include <sstream>

#include "framework/check.h"

namespace strata::pspnet {

nlohmann::json default_config() {
    // Grouped by purpose; the groups are only for reading, the config itself is flat.
    return nlohmann::json{
        // ---- model (semseg's PSPNet-50) ----
        {"depth", 50},                  // 18, 34 (BasicBlock), 50, 101, 152 (Bottleneck)
        {"blocks", nlohmann::json::array()},  // blocks per stage; [] = the standard counts for depth
        {"width", 1.0},                 // channel multiplier (small CPU variants)
        {"deep_stem", true},            // semseg's 3x(3x3) stem; false = torchvision's 7x7
        {"output_stride", 8},           // 8 (layer3/4 dilated 2/4) or 16
        {"classes", 21},
        {"use_ppm", true},              // false: the dilated-FCN baseline without pyramid pooling
        {"bins", {1, 2, 3, 6}},
        {"dropout", 0.1},
        {"zoom_factor", 8},
        {"aux_weight", 0.4},            // 0 disables the auxiliary head
        {"ignore_label", 255},
        {"class_names", nlohmann::json::array()},  // [] = the dataset's own names
        {"object_classes", nlohmann::json::array()},  // eval also reports the accuracy among these classes
        // ---- data ----
        {"dataset", "voc"},             // voc, list, cityscapes, ade20k, contextscenes
        {"data_root", ""},
        {"train_split", "train"},       // voc: ImageSets/Segmentation/<split>.txt; list: a list file
        {"val_split", "val"},
        {"label_dir", "SegmentationClass"},  // voc: or SegmentationClassAug
        {"names_file", ""},             // list: class names, one per line
        {"label_mapping", "none"},      // list: none, cityscapes_ids, ade20k_reduce_zero
        {"scene_size", 113},            // contextscenes (generated in memory): image size
        {"scene_min_gap", 40},          //   rows between the scene band and the objects
        {"scene_train", 2000},
        {"scene_val", 400},
        {"train_h", 473},
        {"train_w", 473},
        {"scale_min", 0.5},
        {"scale_max", 2.0},
        {"rotate_min", -10.0},
        {"rotate_max", 10.0},
        {"blur", true},
        {"flip", true},
        {"workers", 2},                 // loader threads
        // ---- optimisation (semseg: SGD momentum 0.9, wd 1e-4, base LR 0.01, poly 0.9, 10x LR for the heads) ----
        {"batch_size", 16},
        {"iterations", 30000},
        {"base_lr", 0.01},
        {"head_lr_mult", 10.0},
        {"power", 0.9},
        {"momentum", 0.9},
        {"weight_decay", 1e-4},
        {"seed", 0},
        {"weights", ""},                // initial weights (safetensors), e.g. a converted ImageNet backbone
        // ---- running ----
        {"device", "cpu"},              // cpu, cuda, cuda:N, auto
        {"threads", 0},                 // 0 = all cores
        {"reproducible", false},        // GEMMs on the fixed-order kernel: the same bits on every CPU and BLAS
        {"run_dir", "runs/pspnet"},
        {"log_every", 20},
        {"save_every", 1000},
        {"eval_every", 0},              // 0 = only at the end
        // ---- evaluation (semseg's test.py) ----
        {"eval_mode", "whole"},         // whole (one forward per image) or slide (crop windows, stride 2/3 crop)
        {"test_h", 473},                // sliding-window crop
        {"test_w", 473},
        {"base_size", 512},             // slide: the long side is resized to base_size * scale first; 0 = keep
        {"scales", {1.0}},              // multi-scale: e.g. [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
        {"eval_flip", false},           // average with the horizontally flipped image
        {"max_eval_images", 0},         // 0 = the whole split
        {"save_predictions", 8},        // how many colourised predictions eval writes
        // ---- TEMPORARY (wt-img): keys the schema of wt-config defines; the merge removes this block ----
        {"max_image_pixels", 100000000},
    };
}

namespace {

std::string type_of(const nlohmann::json& v) {
    if (v.is_boolean()) return "true/false";
    if (v.is_number_integer()) return "an integer";
    if (v.is_number()) return "a number";
    if (v.is_string()) return "a string";
    if (v.is_array()) return "a list";
    return "an object";
}

bool same_type(const nlohmann::json& expected, const nlohmann::json& got) {
    if (expected.is_number_float()) return got.is_number();
    if (expected.is_number_integer()) return got.is_number_integer();
    if (expected.is_boolean()) return got.is_boolean();
    if (expected.is_string()) return got.is_string();
    if (expected.is_array()) return got.is_array();
    return expected.type() == got.type();
}

void set_key(nlohmann::json& config, const std::string& key, const nlohmann::json& value, const std::string& source) {
    static const nlohmann::json defaults = default_config();
    if (!defaults.contains(key)) {
        std::string keys;
        for (auto it = defaults.begin(); it != defaults.end(); ++it) keys += (keys.empty() ? "" : ", ") + it.key();
        STRATA_FAIL(source, ": unknown config key '", key, "'. Valid keys: ", keys);
    }
    STRATA_CHECK(same_type(defaults[key], value), source, ": config key '", key, "' must be ", type_of(defaults[key]),
                 ", got ", value.dump());
    config[key] = value;
}

}  // namespace

void merge_config(nlohmann::json& config, const nlohmann::json& update, const std::string& source) {
    STRATA_CHECK(update.is_object(), source, ": a config must be a JSON object of key: value pairs");
    for (auto it = update.begin(); it != update.end(); ++it) set_key(config, it.key(), it.value(), source);
}

void apply_override(nlohmann::json& config, const std::string& key_value) {
    size_t eq = key_value.find('=');
    STRATA_CHECK(eq != std::string::npos && eq > 0, "command line: expected key=value, got '", key_value, "'");
    std::string key = key_value.substr(0, eq), text = key_value.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded()) value = text;  // not JSON: a plain string such as a path or a device name
    set_key(config, key, value, "command line");
}

nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides) {
    nlohmann::json config = default_config();
    if (!path.empty()) {
        std::ifstream in(path);
        STRATA_CHECK(in.good(), "cannot open config file '", path, "'");
        nlohmann::json file;
        try {
            file = nlohmann::json::parse(in, nullptr, true, true);  // comments allowed
        } catch (const nlohmann::json::exception& e) {
            STRATA_FAIL(path, ": not valid JSON (", e.what(), ")");
        }
        merge_config(config, file, path);
    }
    for (const std::string& o : overrides) apply_override(config, o);
    return config;
}

PSPNetConfig model_config(const nlohmann::json& c) {
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
