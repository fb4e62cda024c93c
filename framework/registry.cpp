// The layer registry (see registry.h). The map lives in a function-local static so that registrars running during
// static initialisation, in any order, find it constructed (Caffe's layer_factory does the same).
#include "framework/registry.h"

#include <map>

#include "framework/check.h"
#include "framework/registration.h"

namespace strata {

namespace {
std::map<std::string, LayerFactory>& registry() {
    static std::map<std::string, LayerFactory> layers;
    return layers;
}

std::string join(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? "none" : s;
}
}  // namespace

// ---- Attrs ----

Attrs::Attrs(std::string layer, nlohmann::json attrs) : layer_(std::move(layer)), attrs_(std::move(attrs)) {
    if (attrs_.is_null()) attrs_ = nlohmann::json::object();
    STRATA_CHECK(attrs_.is_object(), layer_, ": attributes must be a JSON object, got ", attrs_.dump());
}

const nlohmann::json* Attrs::find(const std::string& key) {
    asked_.insert(key);
    auto it = attrs_.find(key);
    return it == attrs_.end() ? nullptr : &*it;
}

void Attrs::bad_type(const std::string& key, const char* expected) const {
    STRATA_FAIL(layer_, ": attribute '", key, "' must be ", expected, ", got ", attrs_.at(key).dump());
}

int64_t Attrs::get_int(const std::string& key, int64_t fallback) {
    const nlohmann::json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) bad_type(key, "an integer");
    return v->get<int64_t>();
}

int64_t Attrs::require_int(const std::string& key) {
    const nlohmann::json* v = find(key);
    STRATA_CHECK(v != nullptr, layer_, ": missing required attribute '", key, "'");
    if (!v->is_number_integer()) bad_type(key, "an integer");
    return v->get<int64_t>();
}

double Attrs::get_float(const std::string& key, double fallback) {
    const nlohmann::json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) bad_type(key, "a number");
    return v->get<double>();
}

bool Attrs::get_bool(const std::string& key, bool fallback) {
    const nlohmann::json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) bad_type(key, "true or false");
    return v->get<bool>();
}

std::string Attrs::get_string(const std::string& key, const std::string& fallback) {
    const nlohmann::json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) bad_type(key, "a string");
    return v->get<std::string>();
}

nlohmann::json Attrs::get_json(const std::string& key) {
    const nlohmann::json* v = find(key);
    return v ? *v : nlohmann::json();
}

std::vector<int64_t> Attrs::get_ints(const std::string& key, const std::vector<int64_t>& fallback, size_t count) {
    const nlohmann::json* v = find(key);
    if (!v) return fallback;
    if (v->is_number_integer()) return std::vector<int64_t>(count, v->get<int64_t>());
    if (!v->is_array() || v->size() != count) bad_type(key, (std::to_string(count) + " integers").c_str());
    std::vector<int64_t> out;
    for (const auto& e : *v) {
        if (!e.is_number_integer()) bad_type(key, "a list of integers");
        out.push_back(e.get<int64_t>());
    }
    return out;
}

void Attrs::check_all_used() const {
    std::vector<std::string> unknown;
    for (auto it = attrs_.begin(); it != attrs_.end(); ++it)
        if (!asked_.count(it.key())) unknown.push_back(it.key());
    if (unknown.empty()) return;
    for (std::string& k : unknown) k = "'" + k + "'";
    STRATA_FAIL(layer_, ": unknown attribute", unknown.size() > 1 ? "s " : " ", join(unknown),
                "; valid attributes: ", join(std::vector<std::string>(asked_.begin(), asked_.end())));
}

// ---- registry ----

void register_layer(const std::string& name, LayerFactory factory, const std::string& owner) {
    add_registration("layer", name, owner, [name, factory] { registry()[name] = factory; });
}

LayerRegistrar::LayerRegistrar(const char* name, LayerFactory factory, const char* file) {
    add_registration_or_exit("layer", name, file, [name = std::string(name), factory] { registry()[name] = factory; });
}

bool has_layer(const std::string& name) { return registry().count(name) > 0; }

std::vector<std::string> layer_names() {
    std::vector<std::string> names;
    for (auto& [name, f] : registry()) names.push_back(name);
    return names;
}

std::shared_ptr<Module> create_layer(const std::string& name, const nlohmann::json& attrs) {
    auto it = registry().find(name);
    STRATA_CHECK(it != registry().end(), "unknown layer '", name, "' (known layers: ", join(layer_names()), ")");
    Attrs a(name, attrs);
    std::shared_ptr<Module> m = it->second(a);
    a.check_all_used();
    return m;
}

std::shared_ptr<Module> create_layer_from_spec(const nlohmann::json& spec) {
    STRATA_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(),
                 "a layer spec must be a JSON object with a \"type\" string, got ", spec.dump());
    nlohmann::json attrs = spec;
    attrs.erase("type");
    return create_layer(spec["type"].get<std::string>(), attrs);
}

namespace {
// "sequential": {"layers": [{"type": ...}, ...]}
std::shared_ptr<Module> make_sequential(Attrs& attrs) {
    auto seq = std::make_shared<Sequential>();
    nlohmann::json layers = attrs.get_json("layers");
    if (layers.is_null()) return seq;
    STRATA_CHECK(layers.is_array(), "sequential: 'layers' must be a list of layer specs, got ", layers.dump());
    for (const auto& spec : layers) seq->append(create_layer_from_spec(spec));
    return seq;
}
}  // namespace

REGISTER_LAYER("sequential", make_sequential);

}  // namespace strata
