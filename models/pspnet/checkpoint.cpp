// Checkpoint files (see checkpoint.h for the layout).
#include "models/pspnet/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "framework/check.h"
#include "framework/safetensors.h"

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

void load_weights(const std::string& path, Module& model, bool strict) {
    std::map<std::string, Tensor> state = load_safetensors(path).as_map();
    // semseg checkpoints converted as they are keep DataParallel's "module." prefix
    std::map<std::string, Tensor> stripped;
    for (auto& [name, t] : state) stripped[name.rfind("module.", 0) == 0 ? name.substr(7) : name] = t;
    LoadReport r = model.load_state_dict(stripped, strict);
    if (!strict && (!r.missing.empty() || !r.unexpected.empty()))
        std::cerr << "weights " << path << ": loaded " << stripped.size() - r.unexpected.size() << " tensors; "
                  << r.missing.size() << " model tensors kept their initial values, " << r.unexpected.size()
                  << " file tensors were not used\n";
}

}  // namespace strata::pspnet
