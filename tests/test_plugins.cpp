// The registrations and the plugins (framework/registration.h, framework/plugin.h): every op of layers/ is
// registered and reachable from strata.h with no list to edit; a name registered twice names both owners; each bad
// plugin of tests/plugins/bad/ is refused with its message and leaves the registries as they were; the hard_swish
// example plugin loads, passes its gradient check and trains a tiny model; the programs take --plugin,
// --list-layers and the plugins config key.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>

#include "strata.h"
#include "tests/gradcheck.h"
#include "tests/models/run_program.h"

using namespace strata;

namespace {

const std::string kTestPlugins = "build/tests/plugins/";

// Everything a refused plugin could have changed.
struct RegistrySnapshot {
    size_t count, plugins;
    std::vector<std::string> layers;
    std::string listing;
    static RegistrySnapshot take() {
        return {strata::registrations().size(), loaded_plugins().size(), layer_names(), describe_registry()};
    }
    bool operator==(const RegistrySnapshot&) const = default;
};

void check_refused(const std::string& plugin, const std::string& message) {
    RegistrySnapshot before = RegistrySnapshot::take();
    std::string want = "plugin '" + plugin + "' refused: " + message;
    CHECK_THROWS_WITH_AS(load_plugin(plugin), doctest::Contains(want.c_str()), Error);
    CHECK(RegistrySnapshot::take() == before);
}

// Registrations owned by `owner` whose name is `op` or starts with "<op>_".
int owned_by(const std::string& owner, const std::string& op) {
    int n = 0;
    for (const Registration& r : registrations())
        if (r.owner == owner && (r.name == op || r.name.rfind(op + "_", 0) == 0)) ++n;
    return n;
}

}  // namespace

TEST_CASE("registry: every op in layers/ is registered under its name, with kernels, and reachable from strata.h") {
    // ops composed of other ops' kernels, with no kernel or layer of their own (checked below to stay true)
    const std::set<std::string> composed = {"mean"};
    // layers/<op>_<part>.{h,cpp} beside layers/<op>.cpp is a part of that op, not an op of its own: conv2d_plan (the
    // device-independent host plan its CPU and CUDA files share), conv2d_winograd (an algorithm of its CPU kernels)
    std::set<std::string> stems;
    for (const auto& entry : std::filesystem::directory_iterator("layers"))
        if (entry.path().extension() == ".cpp") stems.insert(entry.path().stem().string());
    auto owning_op = [&](const std::string& stem) {
        std::string op;
        for (const std::string& other : stems)
            if (stem.size() > other.size() + 1 && stem.rfind(other + "_", 0) == 0 && other.size() > op.size()) op = other;
        return op;
    };
    std::set<std::string> in_header(std::begin(kLayerHeaders), std::end(kLayerHeaders));
    std::set<std::string> ops;
    for (const std::string& op : stems) {
        const std::string source = "layers/" + op + ".cpp";
        if (!owning_op(op).empty()) continue;
        ops.insert(op);
        CAPTURE(op);
        CHECK(in_header.count("layers/" + op + ".h") == 1);  // strata.h includes it (build/gen/strata_layers.h)
        if (composed.count(op)) {
            CHECK(owned_by(source, "") == 0);
            continue;
        }
        CHECK(owned_by(source, op) > 0);
        // a kernel named after the op has its CPU slot filled by this file
        bool cpu_kernel = false;
        for (const Registration& r : registrations())
            if (r.kind == "kernel" && r.owner == source && r.name.rfind(op + "_", 0) == 0 &&
                r.name.size() > 7 && r.name.substr(r.name.size() - 7) == " on cpu")
                cpu_kernel = true;
        CHECK(cpu_kernel);
        if (has_layer(op)) CHECK(registration_owner("layer", op) == source);
    }
    // every header strata.h includes is an op's, or a part of one
    for (const std::string& header : in_header) {
        std::string stem = std::filesystem::path(header).stem().string();
        CAPTURE(header);
        CHECK(ops.count(owning_op(stem).empty() ? stem : owning_op(stem)) == 1);
    }
}

TEST_CASE("registry: a kernel, layer or backend registered twice is an error naming both registrants") {
    KernelTable<relu_forward_fn> other{"relu_forward"};
    relu_forward_fn fn = [](float*, const float*, int64_t) {};
    RegistrySnapshot before = RegistrySnapshot::take();
    CHECK_THROWS_WITH_AS(register_kernel(relu_forward, DeviceType::CPU, fn, "my_relu.cpp"),
                         doctest::Contains("kernel 'relu_forward on cpu' is registered twice: by layers/relu.cpp and by "
                                           "my_relu.cpp"),
                         Error);
    // a second table of the same name: a kernel put there, for any device, would never be called
    CHECK_THROWS_WITH_AS(register_kernel(other, DeviceType::CUDA, fn, "my_relu.cu"),
                         doctest::Contains("kernel table 'relu_forward' is registered twice: by layers/relu.cpp and by "
                                           "my_relu.cu"),
                         Error);
    CHECK_FALSE(other.has(DeviceType::CUDA));
    CHECK_THROWS_WITH_AS(register_layer("conv2d", nullptr, "my_conv.cpp"),
                         doctest::Contains("layer 'conv2d' is registered twice: by layers/conv2d.cpp and by my_conv.cpp"),
                         Error);
    CHECK_THROWS_WITH_AS(add_registration("backend", "cpu", "my_backend.cpp", [] {}),
                         doctest::Contains("backend 'cpu' is registered twice: by framework/device.cpp and by "
                                           "my_backend.cpp"),
                         Error);
    CHECK(RegistrySnapshot::take() == before);
}

TEST_CASE("plugins: each bad plugin is refused with its reason, and nothing of it is registered") {
    check_refused(kTestPlugins + "bad_abi.so", "it was built for plugin ABI 2, this program has plugin ABI 1");
    check_refused(kTestPlugins + "bad_fingerprint.so",
                  "it was built with [strata 0.1.0; gcc 4.8.5; libstdc++ 20150623 cxx11-abi=0] but this program with [" +
                      build_fingerprint() + "]");
    check_refused(kTestPlugins + "no_entry.so", "it has no entry point strata_plugin()");
    check_refused(kTestPlugins + "throws.so", "its entry point strata_plugin() threw: this plugin needs the XYZ");
    check_refused(kTestPlugins + "duplicate.so", "layer 'relu' is registered twice: by layers/relu.cpp and by plugin " +
                                                     kTestPlugins + "duplicate.so");
    check_refused("tests/plugins/bad/duplicate.cpp", "it is not a shared object this program can load");
    for (const char* layer : {"bad_abi_layer", "bad_fingerprint_layer", "no_entry_layer", "throws_layer",
                              "duplicate_new_layer"})
        CHECK_FALSE(has_layer(layer));
    CHECK_THROWS_WITH_AS(load_plugin("no/such/plugin.so"), doctest::Contains("plugin 'no/such/plugin.so' not found"),
                         Error);
}

TEST_CASE("plugins: hard_swish loads, matches its formula, passes the gradient check and trains a tiny model") {
    std::string path = kTestPlugins + "hard_swish_cpu.so";
    load_plugin(path);
    load_plugin(path);  // the same file again (--plugin and the config) is a no-op, not a duplicate
    CHECK(registration_owner("layer", "hard_swish") == "plugin " + path);
    CHECK(registration_owner("kernel", "hard_swish_forward on cpu") == "plugin " + path);
    REQUIRE(loaded_plugins().size() >= 1);
    CHECK(describe_registry().find("hard_swish 1.0  " + path) != std::string::npos);

    std::shared_ptr<Module> hs = create_layer("hard_swish");
    // x * relu6(x + 3) / 6 on both flat pieces and the curved one
    std::vector<float> y = hs->forward(from_vector({-4.0f, -1.5f, 0.0f, 1.0f, 4.0f}, {5})).to_vector();
    std::vector<float> want = {0.0f, -0.375f, 0.0f, 4.0f / 6.0f, 4.0f};
    for (size_t i = 0; i < want.size(); ++i) CHECK(y[i] == doctest::Approx(want[i]).epsilon(1e-6));

    // away from the kinks at -3 and 3 (the checker skips points next to them anyway)
    Tensor x = rand_uniform({2, 3, 4, 4}, -5.0f, 5.0f).requires_grad_();
    CHECK(testing::gradcheck("hard_swish", [&](const std::vector<Tensor>& in) { return hs->forward(in[0]); }, {x}) >
          0);

    // linear -> hard_swish -> linear, built by name from a spec, fits 8 points in a few SGD steps
    auto model = create_layer_from_spec(nlohmann::json::parse(R"({"type": "sequential", "layers": [
        {"type": "linear", "in_features": 4, "out_features": 16}, {"type": "hard_swish"},
        {"type": "linear", "in_features": 16, "out_features": 3}]})"));
    Tensor inputs = randn({8, 4});
    Tensor labels = from_vector_i32({0, 1, 2, 0, 1, 2, 0, 1}, {8});
    SGD sgd(model->parameters(), SGDOptions{.lr = 0.5f});
    float first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
        sgd.zero_grad();
        Tensor loss = cross_entropy(model->forward(inputs), labels);
        loss.backward();
        sgd.step();
        (step == 0 ? first : last) = loss.item();
    }
    CHECK(last < 0.5f * first);
}

// docs/adding_a_layer.md's layer, from its finished files (docs/tutorial/): what the tutorial tells its reader to see
TEST_CASE("tutorial: swish loads, matches its formula, passes the gradient check; its context module registers") {
    // a reader who followed the tutorial's section 6 has swish in the tree: then that one is checked
    if (registration_owner("layer", "swish") != "layers/swish.cpp") load_plugin(kTestPlugins + "swish.so");
    load_plugin(kTestPlugins + "swish_context.so");
    CHECK(describe_registry().find("swish_context  [plugin " + kTestPlugins + "swish_context.so]") !=
          std::string::npos);

    std::shared_ptr<Module> swish = create_layer("swish");
    // x / (1 + exp(-x)); at -100 exp overflows to inf and the result is the limit, 0
    std::vector<float> y = swish->forward(from_vector({-100.0f, -2.0f, 0.0f, 1.0f}, {4})).to_vector();
    std::vector<float> want = {0.0f, -0.23840584f, 0.0f, 0.73105858f};
    for (size_t i = 0; i < want.size(); ++i) CHECK(y[i] == doctest::Approx(want[i]).epsilon(1e-6));

    Tensor x = randn({2, 3, 4, 5}).requires_grad_();
    CHECK(testing::gradcheck("swish", [&](const std::vector<Tensor>& in) { return swish->forward(in[0]); }, {x}) > 0);
}

TEST_CASE("tutorial: docs/adding_a_layer.md shows each of its finished files whole") {
    auto read = [](const std::string& path) {
        std::ifstream in(path);
        REQUIRE(in.good());
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    };
    std::string doc = read("docs/adding_a_layer.md");
    for (const char* file : {"swish.h", "swish.cpp", "swish.cu", "swish_context.cpp"}) {
        CAPTURE(file);
        CHECK(doc.find(read(std::string("docs/tutorial/") + file)) != std::string::npos);
    }
}

TEST_CASE("plugins: the programs load them from --plugin or the config, list them, and refuse bad ones") {
    auto listed = testing::run_program("build/bin/train --plugin build/plugins/hard_swish.so --list-layers");
    CHECK(listed.code == 0);
    CHECK(listed.output.find("hard_swish  [plugin build/plugins/hard_swish.so]") != std::string::npos);
    CHECK(listed.output.find("hard_swish_forward  cpu [plugin build/plugins/hard_swish.so]") != std::string::npos);
    CHECK(listed.output.find("relu_forward  cpu [layers/relu.cpp]") != std::string::npos);
    CHECK(listed.output.find("hard_swish 1.0  build/plugins/hard_swish.so") != std::string::npos);

    // the config's plugins are loaded before the listing, so they are listed too
    auto listed_from_config = testing::run_program(
        "build/bin/train configs/contextscenes.json plugins=[build/plugins/hard_swish.so] --list-layers");
    CHECK(listed_from_config.code == 0);
    CHECK(listed_from_config.output.find("hard_swish 1.0  build/plugins/hard_swish.so") != std::string::npos);
    CHECK(listed_from_config.output.find("hard_swish  [plugin build/plugins/hard_swish.so]") != std::string::npos);

    auto refused = testing::run_program("build/bin/eval --plugin " + kTestPlugins + "duplicate.so --list-layers");
    CHECK(refused.code == 1);
    CHECK(refused.output.find("error: plugin '" + kTestPlugins + "duplicate.so' refused: layer 'relu' is registered "
                              "twice") != std::string::npos);

    auto from_config = testing::run_program("build/bin/train configs/contextscenes.json 'plugins=[\"" +
                                            kTestPlugins + "throws.so\"]' run_dir=build/tests/plugin_run");
    CHECK(from_config.code == 1);
    CHECK(from_config.output.find("refused: its entry point strata_plugin() threw") != std::string::npos);
}
