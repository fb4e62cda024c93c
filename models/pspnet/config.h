// Configuration of the PSPNet programs (train, eval, infer).
//
// A config is one flat JSON object. Every key has a default (default_config(), which follows semseg's
// voc2012_pspnet50.yaml where semseg has the key); a config file overrides some of them and the command line
// overrides again with key=value:
//
//     build/bin/train configs/voc2012_pspnet50.json data_root=/data/VOCdevkit/VOC2012 batch_size=8 device=cpu
//
// The defaults are also the schema: a key that is not in them is an error listing the valid keys, and a value
// must have the default's type (an integer is accepted where a float is expected). Command-line values are read as
// JSON when they parse as JSON (numbers, true/false, [1,2,3]) and as strings otherwise. The resolved config is
// written into the run folder so that a run can always be reproduced from what it saved.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/pspnet/pspnet.h"

namespace strata::pspnet {

nlohmann::json default_config();

// defaults <- file (if path is not empty) <- overrides ("key=value"), each step validated.
nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides);
// Applies one "key=value" to a config (validated against the defaults).
void apply_override(nlohmann::json& config, const std::string& key_value);
// Merges a JSON object into a config (validated against the defaults).
void merge_config(nlohmann::json& config, const nlohmann::json& update, const std::string& source);

// The model part of a config.
PSPNetConfig model_config(const nlohmann::json& config);

}  // namespace strata::pspnet
