// Checkpoint files (see checkpoint.h for the layout).
#include "models/pspnet/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
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

// "iter_N.json" -> N; -1 for any other name (a stray "iter_x.json" is not a checkpoint and is left alone).
int64_t checkpoint_iteration(const std::string& name) {
    const std::string prefix = "iter_", suffix = ".json";
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        return -1;
    std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    bool numeric = !digits.empty() && digits.size() <= 18 &&
                   std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (!numeric) return -1;
    return std::stoll(digits);
}

uint64_t tensor_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors) {
    uint64_t total = 0;
    for (const auto& [name, t] : tensors) total += uint64_t(t.numel()) * dtype_size(t.dtype());
    return total;
}

std::string megabytes(uint64_t bytes) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(1) << double(bytes) / 1e6 << " MB";
    return s.str();
}

std::string latest_name(const fs::path& dir) {
    std::ifstream in(dir / "latest");
    std::string name;
    in >> name;
    return name;
}

}  // namespace

uint64_t checkpoint_bytes(const Module& model, const SGD& optimizer) {
    return tensor_bytes(model.state_dict()) + tensor_bytes(optimizer.state());
}

void save_checkpoint(const std::string& run_dir, const Module& model, const SGD& optimizer,
                     const TrainingPosition& pos, int keep) {
    require_finite(training_state(model, optimizer), str("not saving a checkpoint at iteration ", pos.iteration),
                   "The previous checkpoint stays as it was; lower base_lr or check the labels and the weights");
    fs::path dir = fs::path(run_dir) / "checkpoints";
    fs::create_directories(dir);
    std::string stem = "iter_" + std::to_string(pos.iteration);
    std::map<std::string, std::string> tensors_meta = {{"format", "strata"},
                                                       {"iteration", std::to_string(pos.iteration)}};
    try {
        save_safetensors((dir / (stem + ".safetensors")).string(), model.state_dict(), tensors_meta);
        save_safetensors((dir / (stem + ".optim.safetensors")).string(), optimizer.state(), tensors_meta);
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
    } catch (const Error& e) {
        // A checkpoint is complete only with all its files and `latest` naming it: remove what this save wrote (a
        // weights file without its optimizer state or metadata would look like a checkpoint it is not), unless
        // `latest` still names this iteration's files.
        if (latest_name(dir) != stem + ".json")
            for (const char* ext : {".safetensors", ".optim.safetensors", ".json"}) {
                std::error_code ec;
                fs::remove(dir / (stem + ext), ec);
                fs::remove(dir / (stem + ext + ".tmp"), ec);
            }
        uint64_t weights = tensor_bytes(model.state_dict()), optim = tensor_bytes(optimizer.state());
        std::error_code ec;
        fs::space_info space = fs::space(dir, ec);
        std::string previous = latest_name(dir);
        STRATA_FAIL("saving the checkpoint of iteration ", pos.iteration, " in '", dir.string(), "' failed: ",
                    e.what(), ". A checkpoint needs ", megabytes(weights + optim), " there (", weights,
                    " bytes of weights + ", optim, " bytes of optimizer state)",
                    ec ? std::string() : "; " + megabytes(space.available) + " are free", ". ",
                    previous.empty() ? std::string("No earlier checkpoint exists.")
                                     : "The newest complete checkpoint is still " + (dir / previous).string() + ".");
    }

    // Keep the newest `keep` checkpoints, and always the one just written.
    std::vector<int64_t> iterations;
    for (const auto& entry : fs::directory_iterator(dir)) {
        int64_t it = checkpoint_iteration(entry.path().filename().string());
        if (it >= 0 && it != pos.iteration) iterations.push_back(it);
    }
    std::sort(iterations.begin(), iterations.end());
    for (size_t i = 0; i + size_t(std::max(keep - 1, 0)) < iterations.size(); ++i) {
        std::string old = "iter_" + std::to_string(iterations[i]);
        for (const char* ext : {".json", ".safetensors", ".optim.safetensors"}) fs::remove(dir / (old + ext));
    }
}

bool has_checkpoint(const std::string& run_dir) {
    return fs::exists(fs::path(run_dir) / "checkpoints" / "latest");
}

TrainingPosition load_checkpoint(const std::string& run_dir, Module& model, SGD& optimizer,
                                 const ResumeOptions& options) {
    fs::path dir = fs::path(run_dir) / "checkpoints";
    STRATA_CHECK(has_checkpoint(run_dir), "no checkpoint to resume from in '", run_dir,
                 "' (expected checkpoints/latest); start without --resume");
    std::string latest = read_text(dir / "latest");
    while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
    const std::string meta_path = (dir / latest).string();
    nlohmann::json meta;
    try {
        meta = nlohmann::json::parse(read_text(dir / latest));
    } catch (const nlohmann::json::exception& e) {
        STRATA_FAIL("checkpoint '", meta_path, "' is not valid JSON (", e.what(), ")");
    }
    STRATA_CHECK(meta.is_object(), "checkpoint '", meta_path, "' is not a JSON object");
    for (const char* key : {"iteration", "rng_seed", "rng_counter", "loader_step", "weights", "optimizer"})
        STRATA_CHECK(meta.contains(key), "checkpoint '", meta_path, "' lacks '", key, "'");
    for (const char* key : {"iteration", "loader_step"})
        STRATA_CHECK(meta[key].is_number_integer() && meta[key].get<int64_t>() >= 0, "checkpoint '", meta_path,
                     "': '", key, "' must be an integer >= 0, got ", meta[key].dump());
    for (const char* key : {"rng_seed", "rng_counter"})
        STRATA_CHECK(meta[key].is_number_unsigned(), "checkpoint '", meta_path, "': '", key,
                     "' must be an integer >= 0, got ", meta[key].dump());
    for (const char* key : {"weights", "optimizer"})
        STRATA_CHECK(meta[key].is_string(), "checkpoint '", meta_path, "': '", key, "' must be a file name, got ",
                     meta[key].dump());
    TrainingPosition pos;
    pos.iteration = meta["iteration"];
    pos.rng_seed = meta["rng_seed"];
    pos.rng_counter = meta["rng_counter"];
    pos.loader_step = meta["loader_step"];
    STRATA_CHECK(options.iterations < 0 || pos.iteration <= options.iterations, "checkpoint '", meta_path,
                 "' is at iteration ", pos.iteration, " but the run has iterations = ", options.iterations,
                 "; pass iterations=", pos.iteration, " or more to continue it");

    // Each safetensors file records the iteration it was saved at; a file from another iteration (a copy, a
    // half-finished save of an older version) would resume with weights and momentum that do not belong together.
    auto check_iteration = [&](const SafetensorsFile& file, const std::string& path) {
        auto it = file.metadata.find("iteration");
        if (it == file.metadata.end()) return;  // written by a Strata that did not record it
        STRATA_CHECK(it->second == std::to_string(pos.iteration), "checkpoint '", meta_path, "' says iteration ",
                     pos.iteration, " but '", path, "' was saved at iteration ", it->second,
                     "; the checkpoint's files do not belong together (restore them from one save, or resume from "
                     "another run folder)");
    };
    const std::string weights_path = (dir / meta["weights"].get<std::string>()).string();
    SafetensorsFile weights = load_safetensors(weights_path);
    check_iteration(weights, weights_path);

    const std::string optim_path = (dir / meta["optimizer"].get<std::string>()).string();
    std::optional<SafetensorsFile> optim;
    if (!options.reset_optimizer) {
        try {
            optim = load_safetensors(optim_path);
        } catch (const Error& e) {
            STRATA_FAIL("the optimizer state '", optim_path, "' of checkpoint '", meta_path, "' cannot be read: ",
                        e.what(), ". Resuming without it would lose the momentum; pass --reset-optimizer to resume "
                        "with the momentum set to zero");
        }
        check_iteration(*optim, optim_path);
        bool stepped = pos.iteration > 0 && optimizer.options().momentum != 0.0f;
        STRATA_CHECK(!stepped || !optim->tensors.empty(), "the optimizer state '", optim_path, "' of checkpoint '",
                     meta_path, "' holds no momentum buffers although ", pos.iteration,
                     " steps with momentum were taken. Resuming would lose the momentum; pass --reset-optimizer to "
                     "resume with the momentum set to zero");
    }
    model.load_state_dict(weights.as_map(), true);
    if (optim) optimizer.load_state(optim->tensors);
    else optimizer.load_state({});
    return pos;
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
