// The layer registry: build a module from its name and JSON attributes.
//
//     auto conv = create_layer("conv2d", {{"in_channels", 3}, {"out_channels", 16}, {"kernel_size", 3}});
//
// Each layer registers its factory from its own file (REGISTER_LAYER("conv2d", make_conv2d) in layers/conv2d.cpp),
// under the same name as its op and file. It is the door for building layers from data (a JSON spec, a config); today
// the tests use it and the PSPNet code constructs its modules directly. An unknown name fails with the list of
// known ones, an unknown or mistyped attribute with the list of valid ones.
//
// Factories read their attributes through Attrs, which remembers every key asked for; create_layer then rejects any
// key the factory did not read, so a typo ("strides" for "stride") is an error instead of a silent default.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/dispatch.h"
#include "framework/module.h"

namespace strata {

class Attrs {
public:
    Attrs(std::string layer, nlohmann::json attrs);

    int64_t get_int(const std::string& key, int64_t fallback);
    int64_t require_int(const std::string& key);
    double get_float(const std::string& key, double fallback);
    bool get_bool(const std::string& key, bool fallback);
    std::string get_string(const std::string& key, const std::string& fallback);
    // A list of ints, or one int meaning `count` copies of it (kernel_size: 3 -> [3, 3]).
    std::vector<int64_t> get_ints(const std::string& key, const std::vector<int64_t>& fallback, size_t count);
    // Any JSON value (null if absent), for structured attributes such as a list of layer specs.
    nlohmann::json get_json(const std::string& key);

    // Fails if the JSON has a key no getter asked for.
    void check_all_used() const;

private:
    const nlohmann::json* find(const std::string& key);
    [[noreturn]] void bad_type(const std::string& key, const char* expected) const;

    std::string layer_;
    nlohmann::json attrs_;
    std::set<std::string> asked_;
};

using LayerFactory = std::shared_ptr<Module> (*)(Attrs& attrs);

// A name registered before (by a file or a plugin) is an error naming both owners (framework/registration.h).
void register_layer(const std::string& name, LayerFactory factory, const std::string& owner);
std::shared_ptr<Module> create_layer(const std::string& name, const nlohmann::json& attrs = nlohmann::json::object());
// {"type": "conv2d", ...attributes}: the form used in config files.
std::shared_ptr<Module> create_layer_from_spec(const nlohmann::json& spec);
std::vector<std::string> layer_names();  // sorted
bool has_layer(const std::string& name);

struct LayerRegistrar {
    LayerRegistrar(const char* name, LayerFactory factory, const char* file);
};

}  // namespace strata

#define REGISTER_LAYER(name, factory) \
    static ::strata::LayerRegistrar STRATA_CONCAT(layer_registrar_, __LINE__)(name, factory, __FILE__)
