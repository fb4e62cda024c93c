// Never silently wrong numbers: counting NaN/Inf, weights files that hold them or do not fit the model (and the
// fine-tuning load that skips what does not fit), and a training run that diverges, which must stop at once and
// leave only finite checkpoints behind.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>

#include "framework/check.h"
#include "framework/finite.h"
#include "framework/optimizer.h"
#include "framework/safetensors.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/config.h"
#include "models/pspnet/numerics.h"
#include "models/pspnet/pspnet.h"
#include "models/pspnet/trainer.h"
#include "tests/models/tiny_model.h"

using namespace strata;
using namespace strata::pspnet;
using strata::testing::quiet;
using strata::testing::tiny_run;
namespace fs = std::filesystem;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// The config's weights options for a train's weights=: missing and unexpected tensors reported, not refused.
WeightsOptions lenient(const RunConfig& c) {
    WeightsOptions o = c.weights.options;
    o.strict = false;
    return o;
}

// The tiny model's state saved to `path`, with `edit` applied to a copy of its tensors first.
void save_tiny_weights(const std::string& path, const RunConfig& config,
                       const std::function<void(std::map<std::string, Tensor>&)>& edit = {}) {
    PSPNet model(config.model);
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : model.state_dict()) state[name] = t.clone();
    if (edit) edit(state);
    save_safetensors(path, NamedTensors(state.begin(), state.end()));
}

std::vector<float> values_of(const Module& m, const std::string& name) {
    for (auto& [n, t] : m.state_dict())
        if (n == name) return t.to_vector();
    FAIL("no tensor " << name);
    return {};
}

// The total count of NaN/Inf in a safetensors file.
int64_t nonfinite_in_file(const std::string& path) {
    int64_t n = 0;
    for (auto& [name, t] : load_safetensors(path).tensors) n += count_nonfinite(t).count;
    return n;
}

std::string read_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

}  // namespace

TEST_CASE("count_nonfinite: NaN, -NaN, +-Inf counted with the first index; large finite values are finite") {
    CHECK(count_nonfinite(from_vector({1.f, -2.f, 3.4e38f, -3.4e38f, 1e-45f, 0.f}, {6})).count == 0);
    CHECK(count_nonfinite(from_vector({1.f}, {1})).first == -1);
    NonFinite f = count_nonfinite(from_vector({1.f, kInf, 2.f, -kNaN, -kInf, kNaN}, {2, 3}));
    CHECK(f.count == 4);
    CHECK(f.first == 1);
    // a tensor of several parallel chunks, poisoned in a late chunk first: the smallest index wins
    std::vector<float> big(300000, 0.5f);
    big[299999] = kNaN;
    big[200001] = kInf;
    big[70000] = -kInf;
    NonFinite g = count_nonfinite(from_vector(big, {300000}));
    CHECK(g.count == 3);
    CHECK(g.first == 70000);
    // non-contiguous input, and several tensors in one call
    Tensor t = from_vector({0.f, 1.f, kNaN, 3.f}, {2, 2}).transpose(0, 1);  // [[0, nan], [1, 3]]
    std::vector<NonFinite> many = count_nonfinite(std::vector<Tensor>{t, Tensor(), from_vector({kInf}, {1})});
    CHECK(many[0].count == 1);
    CHECK(many[0].first == 1);
    CHECK(many[1].count == 0);
    CHECK(many[2].first == 0);
    std::optional<NonFiniteTensor> named = find_nonfinite({{"a", from_vector({1.f}, {1})}, {"b", t}, {"c", t}});
    REQUIRE(named);
    CHECK(named->name == "b");
    CHECK(named->tensors_with_nonfinite == 2);
    CHECK(named->description == "'b' holds 1 non-finite value of 4 (the first, at index 1, is nan)");
}

TEST_CASE("load_weights: an Inf in layer0.0.weight is an error naming the tensor; the option loads it") {
    fs::create_directories("build/test_runs");
    std::string path = "build/test_runs/inf_weights.safetensors";
    RunConfig c = tiny_run("build/test_runs/unused");
    save_tiny_weights(path, c, [](std::map<std::string, Tensor>& s) {
        s.at("layer0.0.weight").f32()[3] = kInf;
        s.at("layer0.0.weight").f32()[5] = kNaN;
    });
    PSPNet model(c.model);
    std::vector<float> before = values_of(model, "layer0.0.weight");
    CHECK_THROWS_WITH_AS(load_weights(path, model, lenient(c)),
                         doctest::Contains("'layer0.0.weight' holds 2 non-finite values of"), Error);
    CHECK_THROWS_WITH_AS(load_weights(path, model, c.weights.options),
                         doctest::Contains("(the first, at index 3, is inf). The file is damaged or comes from a "
                                           "diverged run; nothing was loaded. Set allow_nonfinite_weights=true"),
                         Error);
    CHECK(values_of(model, "layer0.0.weight") == before);  // a refused file changes nothing

    c.weights.options.allow_nonfinite = true;
    WeightsReport r = load_weights(path, model, c.weights.options);
    CHECK(r.exact());
    CHECK(count_nonfinite(model.state_dict().front().second).count == 2);
}

TEST_CASE("train: weights= with an Inf is refused before training; resume from a poisoned checkpoint too") {
    std::string dir = "build/test_runs/inf_train";
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string path = dir + "/inf.safetensors";
    RunConfig c = tiny_run(dir, {"iterations=2"});
    save_tiny_weights(path, c, [](std::map<std::string, Tensor>& s) { s.at("layer0.0.weight").f32()[0] = kInf; });
    c.weights.path = path;
    CHECK_THROWS_WITH_AS(train(c, quiet()), doctest::Contains("'layer0.0.weight' holds 1 non-finite value"), Error);
    CHECK_FALSE(fs::exists(dir + "/checkpoints"));

    // a run's checkpoint poisoned afterwards: --resume refuses it, naming the tensor
    c.weights.path = "";
    c.train.save_every = 1;
    TrainOptions stop = quiet();
    stop.stop_after = 1;
    train(c, stop);
    std::string weights = dir + "/checkpoints/iter_1.safetensors";
    SafetensorsFile f = load_safetensors(weights);
    for (auto& [name, t] : f.tensors)
        if (name == "layer0.1.running_var") t.f32()[2] = kNaN;
    save_safetensors(weights, f.tensors, f.metadata);
    TrainOptions resume = quiet();
    resume.resume = true;
    std::string expected = "cannot resume " + dir + ": 'layer0.1.running_var' holds 1 non-finite";
    CHECK_THROWS_WITH_AS(train(c, resume), doctest::Contains(expected.c_str()), Error);
}

TEST_CASE("train: a non-finite BN statistic stops the run at its first step, naming it (the loss stays finite)") {
    // In training mode BatchNorm normalises with the batch's statistics, so an Inf running_var does not reach the
    // loss: only the check of the state after each step can see it.
    std::string dir = "build/test_runs/inf_buffer";
    fs::remove_all(dir);
    fs::create_directories(dir);
    RunConfig c = tiny_run(dir, {"iterations=3", "save_every=1", "allow_nonfinite_weights=true"});
    save_tiny_weights(dir + "/w.safetensors", c,
                      [](std::map<std::string, Tensor>& s) { s.at("layer0.1.running_var").f32()[1] = kInf; });
    c.weights.path = dir + "/w.safetensors";
    CHECK_THROWS_WITH_AS(train(c, quiet()),
                         doctest::Contains("training diverged at iteration 1: 'layer0.1.running_var' holds 1"),
                         Error);
    CHECK_FALSE(fs::exists(dir + "/checkpoints/latest"));
}

TEST_CASE("train: base_lr=1e3 stops at the first non-finite value, and the newest checkpoint is finite") {
    std::string dir = "build/test_runs/diverge";
    fs::remove_all(dir);
    // The fixed-order GEMM makes the run the same on every machine, so it diverges at the same step everywhere
    // (late enough to have saved checkpoints before).
    RunConfig c = tiny_run(dir, {"base_lr=1000", "iterations=20", "save_every=1", "reproducible=true"});
    std::string message;
    try {
        train(c, quiet());
    } catch (const Error& e) {
        message = e.what();
    }
    INFO(message);
    REQUIRE(message.find("training diverged at iteration 5: ") != std::string::npos);
    CHECK(message.find("Lower base_lr (now 1000)") != std::string::npos);
    int64_t diverged = std::stoll(message.substr(message.find("iteration ") + 10));
    // every step before the one that diverged was saved, and that step was not
    REQUIRE(fs::exists(dir + "/checkpoints/latest"));
    std::string latest = read_line(dir + "/checkpoints/latest");
    CHECK(latest == "iter_" + std::to_string(diverged - 1) + ".json");
    nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir + "/checkpoints/" + latest));
    CHECK(nonfinite_in_file(dir + "/checkpoints/" + meta["weights"].get<std::string>()) == 0);
    CHECK(nonfinite_in_file(dir + "/checkpoints/" + meta["optimizer"].get<std::string>()) == 0);
    CHECK_FALSE(fs::exists(dir + "/model.safetensors"));
}

TEST_CASE("save_checkpoint: a model holding NaN is not saved and the previous checkpoint stays") {
    std::string dir = "build/test_runs/nan_save";
    fs::remove_all(dir);
    RunConfig c = tiny_run(dir);
    PSPNet model(c.model);
    std::vector<Tensor> params = model.parameters();
    SGD optimizer(params, SGDOptions{});
    TrainingPosition pos;
    pos.iteration = 1;
    save_checkpoint(dir, model, optimizer, pos);
    for (auto& [name, t] : model.state_dict())
        if (name == "layer1.0.bn1.running_mean") t.f32()[0] = kNaN;
    pos.iteration = 2;
    CHECK_THROWS_WITH_AS(save_checkpoint(dir, model, optimizer, pos),
                         doctest::Contains("not saving a checkpoint at iteration 2: 'layer1.0.bn1.running_mean'"),
                         Error);
    CHECK(read_line(dir + "/checkpoints/latest") == "iter_1.json");
    CHECK_FALSE(fs::exists(dir + "/checkpoints/iter_2.safetensors"));
}

TEST_CASE("load_weights: a file that matches no model tensor is an error naming both sides' names") {
    fs::create_directories("build/test_runs");
    std::string path = "build/test_runs/unmatched.safetensors";
    save_safetensors(path, {{"backbone.conv1.weight", zeros({2, 2})}, {"backbone.fc.bias", zeros({2})}});
    RunConfig c = tiny_run("build/test_runs/unused");
    PSPNet model(c.model);
    std::string expected = "weights '" + path + "' match none of the model's";
    CHECK_THROWS_WITH_AS(load_weights(path, model, lenient(c)), doctest::Contains(expected.c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(load_weights(path, model, lenient(c)),
                         doctest::Contains("Names in the file: backbone.conv1.weight, backbone.fc.bias. Names in "
                                           "the model: layer0.0.weight, layer0.1.weight"),
                         Error);
    CHECK_THROWS_WITH_AS(load_weights(path, model, lenient(c)),
                         doctest::Contains("allow_unmatched_weights=true"), Error);
    c.weights.options.allow_unmatched = true;
    WeightsReport r = load_weights(path, model, lenient(c));
    CHECK(r.loaded.empty());
    CHECK(r.unexpected == std::vector<std::string>{"backbone.conv1.weight", "backbone.fc.bias"});
    CHECK(r.missing.size() == model.state_dict().size());
}

TEST_CASE("load_weights: fine-tuning to another class count skips and names the heads' tensors") {
    fs::create_directories("build/test_runs");
    std::string path = "build/test_runs/eight_classes.safetensors";
    RunConfig eight = tiny_run("build/test_runs/unused");
    save_tiny_weights(path, eight, [](std::map<std::string, Tensor>& s) {
        s["extra.tensor"] = zeros({3});
        s.erase("layer0.1.bias");
    });
    PSPNet source(eight.model);
    RunConfig five = tiny_run("build/test_runs/unused", {"classes=5"});
    PSPNet model(five.model);

    // without the option: a hard error naming the tensor, both shapes and the option
    std::string message;
    try {
        load_weights(path, model, lenient(five));
    } catch (const Error& e) {
        message = e.what();
    }
    CHECK(message.find("has shape [8, ") != std::string::npos);
    CHECK(message.find("in the file but [5, ") != std::string::npos);
    CHECK(message.find("weights_skip_mismatched=true") != std::string::npos);

    five.weights.options.skip_mismatched = true;
    WeightsReport r = load_weights(path, model, lenient(five));
    REQUIRE(!r.skipped.empty());
    for (const SkippedTensor& s : r.skipped) {
        CAPTURE(s.name);
        CHECK(s.file_shape[0] == 8);
        CHECK(s.model_shape[0] == 5);
    }
    CHECK(r.missing == std::vector<std::string>{"layer0.1.bias"});
    CHECK(r.unexpected == std::vector<std::string>{"extra.tensor"});
    CHECK(r.loaded.size() + r.missing.size() + r.skipped.size() == model.state_dict().size());
    CHECK(values_of(model, "layer0.0.weight") == load_safetensors(path).get("layer0.0.weight").to_vector());
    std::string text = describe(r);
    CHECK(text.find("missing from the file (they keep their initial values): layer0.1.bias") != std::string::npos);
    CHECK(text.find("unexpected (in the file, not in the model; not used): extra.tensor") != std::string::npos);
    CHECK(text.find(r.skipped[0].name + " [8, ") != std::string::npos);

    // eval and infer load strictly: the same file is refused there, naming what does not match
    CHECK_THROWS_WITH_AS(load_weights(path, model, five.weights.options),
                         doctest::Contains("Missing from the file: layer0.1.bias. Not in the model: extra.tensor"),
                         Error);
}
