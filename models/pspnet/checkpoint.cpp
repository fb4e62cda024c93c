// Checkpoint files (see checkpoint.h for the layout).
#include "models/pspnet/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "framework/check.h"
#include "framework/finite.h"
#include "framework/safetensors.h"
#include "models/pspnet/numerics.h"

namespace strata::pspnet {

namespace fs = std::filesystem;

namespace {
std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    STRATA_CHECK(in.good(), "cannot read '", path.string(), "'");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
}  // namespace

void save_checkpoint(const std::string& run_dir, const Module& model, const SGD& optimizer,
                     const TrainingPosition& pos, int keep) {
    require_finite(training_state(model, optimizer), str("not saving a checkpoint at iteration ", pos.iteration),
                   "The previous checkpoint stays as it was; lower base_lr or check the labels and the weights");
    fs::path dir = fs::path(run_dir) / "checkpoints";
    fs::create_directories(dir);
    std::string stem = "iter_" + std::to_string(pos.iteration);
    save_safetensors((dir / (stem + ".safetensors")).string(), model.state_dict(),
                     {{"format", "strata"}, {"iteration", std::to_string(pos.iteration)}});
    save_safetensors((dir / (stem + ".optim.safetensors")).string(), optimizer.state());
    nlohmann::json meta = {
        {"iteration", pos.iteration},
        {"rng_seed", pos.rng_seed},
        {"rng_counter", pos.rng_counter},
        {"loader_step", pos.loader_step},
        {"lr", optimizer.lr()},
        {"weights", stem + ".safetensors"},
        {"optimizer", stem + ".optim.safetensors"},
    };
    write_file_atomically((dir / (stem + ".json")).string(), meta.dump(2) + "\n");
    write_file_atomically((dir / "latest").string(), stem + ".json\n");

    // Keep the newest `keep` checkpoints.
    std::vector<int64_t> iterations;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::string name = entry.path().filename().string();
        if (name.rfind("iter_", 0) == 0 && entry.path().extension() == ".json")
            iterations.push_back(std::stoll(name.substr(5)));
    }
    std::sort(iterations.begin(), iterations.end());
    for (size_t i = 0; i + size_t(keep) < iterations.size(); ++i) {
        std::string old = "iter_" + std::to_string(iterations[i]);
        for (const char* ext : {".json", ".safetensors", ".optim.safetensors"}) fs::remove(dir / (old + ext));
    }
}

bool has_checkpoint(const std::string& run_dir) {
    return fs::exists(fs::path(run_dir) / "checkpoints" / "latest");
}

TrainingPosition load_checkpoint(const std::string& run_dir, Module& model, SGD& optimizer) {
    fs::path dir = fs::path(run_dir) / "checkpoints";
    STRATA_CHECK(has_checkpoint(run_dir), "no checkpoint to resume from in '", run_dir,
                 "' (expected checkpoints/latest); start without --resume");
    std::string latest = read_text(dir / "latest");
    while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
    nlohmann::json meta;
    try {
        meta = nlohmann::json::parse(read_text(dir / latest));
    } catch (const nlohmann::json::exception& e) {
        STRATA_FAIL("checkpoint '", (dir / latest).string(), "' is not valid JSON (", e.what(), ")");
    }
    for (const char* key : {"iteration", "rng_seed", "rng_counter", "loader_step", "weights", "optimizer"})
        STRATA_CHECK(meta.contains(key), "checkpoint '", (dir / latest).string(), "' lacks '", key, "'");
    model.load_state_dict(load_safetensors((dir / meta["weights"].get<std::string>()).string()).as_map(), true);
    SafetensorsFile optim = load_safetensors((dir / meta["optimizer"].get<std::string>()).string());
    optimizer.load_state(optim.tensors);
    TrainingPosition pos;
    pos.iteration = meta["iteration"];
    pos.rng_seed = meta["rng_seed"];
    pos.rng_counter = meta["rng_counter"];
    pos.loader_step = meta["loader_step"];
    return pos;
}

WeightsOptions weights_options(const nlohmann::json& config, bool strict) {
    WeightsOptions o;
    o.strict = strict;
    o.skip_mismatched = config["weights_skip_mismatched"];
    o.allow_nonfinite = config["allow_nonfinite_weights"];
    o.allow_unmatched = config["allow_unmatched_weights"];
    return o;
}

namespace {
// "a, b, c" with every name (the report is for reading, a list cut short would hide what went wrong)
std::string join_names(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}
// The first few names, for an error message that shows what the names look like.
std::string example_names(const std::vector<std::string>& names, size_t count = 4) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < count; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > count) s += str(", ... (", names.size(), " in all)");
    return s.empty() ? std::string("none") : s;
}
}  // namespace

std::string describe(const WeightsReport& r) {
    size_t model_tensors = r.loaded.size() + r.missing.size() + r.skipped.size();
    std::string s = str("weights ", r.path, ": loaded ", r.loaded.size(), " of ", model_tensors, " model tensors\n");
    if (!r.missing.empty())
        s += str("  missing from the file (they keep their initial values): ", join_names(r.missing), "\n");
    if (!r.unexpected.empty())
        s += str("  unexpected (in the file, not in the model; not used): ", join_names(r.unexpected), "\n");
    if (!r.skipped.empty()) {
        s += "  skipped, shape differs (weights_skip_mismatched=true): ";
        for (size_t i = 0; i < r.skipped.size(); ++i)
            s += str(i ? ", " : "", r.skipped[i].name, " ", shape_str(r.skipped[i].file_shape), " in the file vs ",
                     shape_str(r.skipped[i].model_shape), " in the model");
        s += "\n";
    }
    return s;
}

WeightsReport load_weights(const std::string& path, Module& model, const WeightsOptions& options) {
    std::map<std::string, Tensor> state = load_safetensors(path).as_map();
    // semseg checkpoints converted as they are keep DataParallel's "module." prefix
    std::map<std::string, Tensor> file;
    for (auto& [name, t] : state) file[name.rfind("module.", 0) == 0 ? name.substr(7) : name] = t;

    WeightsReport r;
    r.path = path;
    NamedTensors own = model.state_dict();
    NamedTensors to_load;  // (model name, file tensor), in the model's order
    std::vector<std::string> own_names;
    std::map<std::string, bool> in_model;
    for (auto& [name, t] : own) {
        own_names.push_back(name);
        in_model[name] = true;
        auto it = file.find(name);
        if (it == file.end()) {
            r.missing.push_back(name);
            continue;
        }
        const Tensor& src = it->second;
        STRATA_CHECK(src.dtype() == t.dtype(), "weights '", path, "': '", name, "' is ", dtype_name(src.dtype()),
                     " in the file but ", dtype_name(t.dtype()), " in the model");
        if (src.shape() != t.shape()) {
            STRATA_CHECK(options.skip_mismatched, "weights '", path, "': '", name, "' has shape ", src.shape_string(),
                         " in the file but ", t.shape_string(), " in the model (another class count or model "
                         "variant?). To fine-tune from it, set weights_skip_mismatched=true: tensors whose shapes "
                         "differ are then skipped, named, and keep their initial values");
            r.skipped.push_back({name, src.shape(), t.shape()});
            continue;
        }
        to_load.emplace_back(name, src);
    }
    std::vector<std::string> file_names;
    for (auto& [name, t] : file) {
        file_names.push_back(name);
        if (!in_model.count(name)) r.unexpected.push_back(name);
    }

    if (to_load.empty() && !options.allow_unmatched)
        STRATA_FAIL("weights '", path, "' match none of the model's ", own.size(), " tensors",
                    r.skipped.empty() ? "" : str(" (", r.skipped.size(), " have the right name but another shape)"),
                    ". Names in the file: ", example_names(file_names), ". Names in the model: ",
                    example_names(own_names), ". Is it a weights file of this model (depth, layout)? Set "
                    "allow_unmatched_weights=true to train from the initial values anyway");
    if (options.strict && (!r.missing.empty() || !r.unexpected.empty() || !r.skipped.empty()))
        STRATA_FAIL("weights '", path, "' do not match the model. Missing from the file: ",
                    example_names(r.missing, 10), ". Not in the model: ", example_names(r.unexpected, 10),
                    r.skipped.empty() ? "" : str(". Skipped (shape differs): ", r.skipped.size()),
                    ". Give the weights this model was trained with (the config's depth, classes and layout)");
    if (!options.allow_nonfinite) {
        if (std::optional<NonFiniteTensor> bad = find_nonfinite(to_load))
            STRATA_FAIL("weights '", path, "': ", bad->description,
                        bad->tensors_with_nonfinite > 1 ? str("; ", bad->tensors_with_nonfinite,
                                                              " tensors in all hold NaN or Inf")
                                                        : std::string(),
                        ". The file is damaged or comes from a diverged run; nothing was loaded. Set "
                        "allow_nonfinite_weights=true to load it anyway");
    }

    // Everything checked: only now copy, so that a refused file leaves the model as it was.
    std::map<std::string, Tensor> target(own.begin(), own.end());
    for (auto& [name, src] : to_load) {
        target[name].copy_(src);
        r.loaded.push_back(name);
    }
    return r;
}

}  // namespace strata::pspnet
