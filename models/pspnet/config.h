// Configuration of the PSPNet programs (train, eval, infer).
//
// A config is one flat JSON object. Every key is declared once, in the schema of config.cpp (config_schema()):
// its type, its default (semseg's voc2012_pspnet50.yaml where semseg has the key), its meaning and the values it
// may take. default_config(), the `--help` of the programs and the validation all come from that table. A config
// file overrides some keys and the command line overrides again with key=value:
//
//     build/bin/train configs/voc2012_pspnet50.json data_root=/data/VOCdevkit/VOC2012 batch_size=8 device=cpu
//
// A key that is not in the schema is an error that suggests the nearest valid keys; a value must have the key's
// type (an integer is accepted where a number is expected); a key given twice in one file is an error. Once the
// layers are merged the whole config is validated: every value against its range and the keys against each
// other (ignore_label vs classes, the training crop vs the output stride, ...). Command-line values are read as
// JSON when they parse as JSON (numbers, true/false, [1,2,3]) and as strings otherwise. The resolved config is
// written into the run folder so that a run can always be reproduced from what it saved.
#pragma once

#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

enum class KeyType { kInt, kNumber, kBool, kString, kIntList, kNumberList, kStringList };

// One config key: the single place that says what it means and what it may hold.
struct KeySpec {
    std::string name;
    std::string group;               // model, data, optimisation, running, evaluation (only for --help)
    KeyType type = KeyType::kInt;
    nlohmann::json default_value;
    std::string meaning;
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

// The defaults of every key.
nlohmann::json default_config();

// defaults <- file (if path is not empty) <- preset (keys set after the file, e.g. the run folder's own run_dir,
// reported as coming from preset_source) <- overrides ("key=value"); each key checked against the schema as it
// is set, then the merged config validated as a whole (validate_config).
nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides,
                           const nlohmann::json& preset = nlohmann::json::object(),
                           const std::string& preset_source = "");
// Applies one "key=value" to a config (the key and the type checked; the range is checked by validate_config).
void apply_override(nlohmann::json& config, const std::string& key_value);
// Merges a JSON object into a config (keys and types checked; ranges by validate_config).
void merge_config(nlohmann::json& config, const nlohmann::json& update, const std::string& source);
// Checks every value against its range and the rules between keys. An error names the key, its value, where the
// value came from (origins: key -> "the command line", a file name; missing = not said), the allowed values and
// how to fix it.
void validate_config(const nlohmann::json& config, const std::map<std::string, std::string>& origins = {});

// The model part of a config.
PSPNetConfig model_config(const nlohmann::json& config);

}  // namespace strata::pspnet
