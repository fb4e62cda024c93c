// The run config (models/pspnet/config.h): the schema, loading, validation of every key and of the rules between
// keys, duplicate keys, suggestions for a misspelt key, --help, run folders as the config of eval and infer, and
// the STRATA_DEBUG switch that adds the source line to error messages (framework/check.h).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/models/run_program.h"
#include "framework/check.h"
#include "models/pspnet/cli.h"
#include "models/pspnet/config.h"

using namespace strata;
using namespace strata::pspnet;
namespace fs = std::filesystem;

using strata::testing::ProgramResult;
using strata::testing::run_program;

namespace {

// The message load_config throws for these overrides ("" when it throws nothing).
std::string error_of(const std::vector<std::string>& overrides, const std::string& path = "") {
    try {
        load_config(path, overrides);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Sets STRATA_DEBUG for a scope and restores what was there.
struct DebugScope {
    std::string saved;
    bool had = false;
    explicit DebugScope(const char* value) {
        if (const char* v = std::getenv("STRATA_DEBUG")) had = true, saved = v;
        if (value) setenv("STRATA_DEBUG", value, 1);
        else unsetenv("STRATA_DEBUG");
    }
    ~DebugScope() {
        if (had) setenv("STRATA_DEBUG", saved.c_str(), 1);
        else unsetenv("STRATA_DEBUG");
    }
};

CommandLine command_line(const std::string& config_path, std::vector<std::string> overrides = {}) {
    CommandLine cl;
    cl.config_path = config_path;
    cl.overrides = std::move(overrides);
    return cl;
}

}  // namespace

TEST_CASE("config: defaults, files, overrides and their errors") {
    RunConfig c = load_config("", {"batch_size=8", "scales=[0.5,1.0]", "data_root=/x/y", "base_lr=1"});
    CHECK(c.train.batch_size == 8);
    CHECK(c.eval.protocol.scales.size() == 2);
    CHECK(c.data.root == "/x/y");
    CHECK(c.train.base_lr == 1.0);  // an integer where a float is expected is fine
    CHECK(c.train.momentum == doctest::Approx(0.9));  // semseg's defaults
    CHECK(c.model.aux_weight == doctest::Approx(0.4));
    CHECK_THROWS_WITH_AS(load_config("", {"batch_size=eight"}),
                         doctest::Contains("'batch_size' must be an integer, got \"eight\""), Error);
    CHECK_THROWS_WITH_AS(load_config("", {"bins=[1,2.5]"}),
                         doctest::Contains("'bins' must be a list of integers, got [1,2.5]"), Error);
    CHECK_THROWS_WITH_AS(load_config("", {"batch_size"}), doctest::Contains("expected key=value"), Error);
    // data parallel: the gradient bucket size and the backend
    CHECK(load_config("", {}).bucket_mb == 25.0);
    CHECK(load_config("", {"bucket_mb=0.5"}).bucket_mb == 0.5);
    CHECK_THROWS_WITH_AS(load_config("", {"bucket_mb=0"}), doctest::Contains("bucket_mb"), Error);
    CHECK_THROWS_WITH_AS(load_config("", {"bucket_mb=5000"}), doctest::Contains("bucket_mb"), Error);
    CHECK(load_config("", {}).communicator == "auto");
    CHECK_THROWS_WITH_AS(load_config("", {"communicator=gloo"}), doctest::Contains("not one of the allowed values"),
                         Error);
    CHECK_THROWS_WITH_AS(load_config("no/such/config.json", {}), doctest::Contains("cannot open config file"), Error);
    fs::create_directories("build/test_runs");
    std::ofstream("build/test_runs/bad.json") << "{\"depth\": 50, \"widht\": 1.0}";
    CHECK_THROWS_WITH_AS(load_config("build/test_runs/bad.json", {}),
                         doctest::Contains("build/test_runs/bad.json: unknown config key 'widht'"), Error);
    for (const char* shipped : {"configs/contextscenes.json", "configs/voc2012_pspnet50.json",
                                "configs/ade20k_pspnet50.json", "configs/cityscapes_pspnet50.json"})
        CHECK_NOTHROW(load_config(shipped, {}));
}

TEST_CASE("config: one schema declares every key, and the defaults come from it") {
    nlohmann::json d = to_json(default_config());
    std::set<std::string> names;
    for (const KeySpec& s : config_schema()) {
        CHECK_MESSAGE(names.insert(s.name).second, s.name, " is declared twice");
        CHECK_MESSAGE(!s.meaning.empty(), s.name);
        CHECK(d[s.name] == s.default_value);
    }
    CHECK(names.size() == d.size());
    CHECK_NOTHROW(validate_config(default_config()));
    // the keys the other parts of the program read (agreed names and defaults)
    CHECK(d["max_image_pixels"] == 100000000);
    CHECK(d["allow_nonfinite_weights"] == false);
    CHECK(d["weights_skip_mismatched"] == false);
    CHECK(d["allow_unmatched_weights"] == false);
    CHECK(d["tensorboard"] == true);
    CHECK(d["eval_output"] == "");
    CHECK(d["reproducible"] == false);
    CHECK(find_key("momentum")->type == KeyType::kNumber);
    CHECK(find_key("no_such_key") == nullptr);
    CHECK(allowed_values(*find_key("momentum")) == "a number in [0, 1)");
    CHECK(allowed_values(*find_key("batch_size")) == "an integer >= 1");
    CHECK(allowed_values(*find_key("eval_mode")) == "one of whole, slide (a string)");
    CHECK(allowed_values(*find_key("depth")) == "one of 18, 34, 50, 101, 152 (an integer)");
    CHECK(allowed_values(*find_key("scales")) == "a non-empty list of numbers > 0");
}

TEST_CASE("config: out-of-range values are errors that name the key, the value, the range and the fix") {
    // the examples
    std::string e = error_of({"momentum=2"});
    CHECK(e.find("config key 'momentum' is 2 (set on the command line)") != std::string::npos);
    CHECK(e.find("a number in [0, 1)") != std::string::npos);
    CHECK(e.find("momentum=0.9 (the default)") != std::string::npos);
    CHECK(error_of({"power=-1"}).find("config key 'power' is -1") != std::string::npos);
    CHECK(error_of({"power=-1"}).find("a number > 0") != std::string::npos);
    CHECK(error_of({"aux_weight=-1"}).find("config key 'aux_weight' is -1") != std::string::npos);
    CHECK(error_of({"aux_weight=-1"}).find("a number >= 0") != std::string::npos);
    CHECK(error_of({"test_h=0"}).find("config key 'test_h' is 0") != std::string::npos);
    CHECK(error_of({"base_size=-1"}).find("config key 'base_size' is -1") != std::string::npos);
    // and the others, one per key with a range
    for (const char* bad : {"iterations=0", "iterations=-5", "save_every=-1", "threads=-1", "seed=-1",
                            "batch_size=0", "dropout=1", "weight_decay=-0.1", "base_lr=0", "head_lr_mult=0",
                            "workers=-1", "log_every=0", "eval_every=-1", "max_image_pixels=0", "classes=0",
                            "test_w=-3", "width=0", "scale_min=0", "rotate_max=400", "max_eval_images=-1",
                            "save_predictions=-1", "scene_size=0", "scene_min_gap=-1", "scene_train=0",
                            "ignore_label=-1"}) {
        std::string key = std::string(bad).substr(0, std::string(bad).find('='));
        CHECK_MESSAGE(error_of({bad}).find("config key '" + key + "' is ") != std::string::npos, bad);
    }
    CHECK(error_of({"batch_size=3000000000"}).find("larger than 2147483647") != std::string::npos);
    CHECK(error_of({"eval_mode=sliding"}).find("one of whole, slide") != std::string::npos);
    CHECK(error_of({"dataset=coco"}).find("one of ade20k, cityscapes, contextscenes, list, voc") != std::string::npos);
    CHECK(error_of({"label_mapping=ids"}).find("'label_mapping' is \"ids\"") != std::string::npos);
    CHECK(error_of({"depth=42"}).find("one of 18, 34, 50, 101, 152") != std::string::npos);
    CHECK(error_of({"output_stride=32"}).find("one of 8, 16") != std::string::npos);
    CHECK(error_of({"zoom_factor=3"}).find("one of 1, 2, 4, 8") != std::string::npos);
    CHECK(error_of({"scales=[]"}).find("which is empty") != std::string::npos);
    CHECK(error_of({"scales=[1,0]"}).find("its element 0 is out of range") != std::string::npos);
    CHECK(error_of({"bins=[1,0]"}).find("config key 'bins'") != std::string::npos);
    CHECK(error_of({"run_dir="}).find("config key 'run_dir'") != std::string::npos);
    for (const char* device : {"device=tpu", "device=cuda:", "device=cuda:x", "device=cuda:99999999999"})
        CHECK_MESSAGE(error_of({device}).find("unknown device") != std::string::npos, device);
    for (const char* device : {"device=cpu", "device=cuda", "device=cuda:1", "device=auto"})
        CHECK_MESSAGE(error_of({device}).empty(), device);  // whether the build has CUDA is checked when it runs
    // a value from a file is reported as coming from that file
    fs::create_directories("build/test_runs");
    std::ofstream("build/test_runs/momentum.json") << "{\"momentum\": 1.5}";
    CHECK(error_of({}, "build/test_runs/momentum.json").find("is 1.5 (set in build/test_runs/momentum.json)") !=
          std::string::npos);
}

TEST_CASE("config: the rules between keys") {
    CHECK(error_of({"ignore_label=3"}).find("which is class 3 of the 21 classes") != std::string::npos);
    CHECK(error_of({"classes=8", "ignore_label=8"}).empty());
    CHECK(error_of({"object_classes=[5,21]"}).find("'object_classes' holds 21 (set on the command line), which is "
                                                   "not a class") != std::string::npos);
    CHECK(error_of({"object_classes=[5,5]"}).find("lists class 5 twice") != std::string::npos);
    CHECK(error_of({"class_names=[\"a\",\"b\"]"}).find("'class_names' lists 2 names") != std::string::npos);
    CHECK(error_of({"classes=2", "class_names=[\"a\",\"b\"]"}).empty());
    CHECK(error_of({"scale_min=2", "scale_max=1"}).find("scale_min must be <= scale_max") != std::string::npos);
    CHECK(error_of({"rotate_min=5", "rotate_max=-5"}).find("rotate_min must be <= rotate_max") != std::string::npos);
    CHECK(error_of({"bins=[]"}).find("needs at least one bin") != std::string::npos);
    CHECK(error_of({"bins=[]", "context=none"}).empty());
    CHECK(error_of({"blocks=[1,1]"}).find("'blocks' is [1,1]") != std::string::npos);
    CHECK(error_of({"blocks=[0,1,1,1]"}).find("'blocks' is [0,1,1,1]") != std::string::npos);
    CHECK(error_of({"blocks=[1,1,0,0]"}).empty());
    // the training crop: 8k+1 (16k+1 at output stride 16), and big enough for the pyramid's largest bin
    CHECK(error_of({"train_h=472"}).find("must be of the form 8k+1") != std::string::npos);
    CHECK(error_of({"train_h=472"}).find("the nearest valid values are 465 and 473") != std::string::npos);
    CHECK(error_of({"train_w=473", "output_stride=16"}).find("form 16k+1") != std::string::npos);
    CHECK(error_of({"train_h=465", "train_w=465", "output_stride=16"}).empty());
    CHECK(error_of({"train_h=1"}).find("'train_h' is 1 (set on the command line), too small") != std::string::npos);
    CHECK(error_of({"train_w=9"}).find("Use train_w >= 41") != std::string::npos);  // bins up to 6 at stride 8
    CHECK(error_of({"train_w=9", "context=none"}).empty());
    CHECK(error_of({"train_w=9", "bins=[1,2]"}).empty());
    // the sliding window likewise (only checked when it is used)
    CHECK(error_of({"eval_mode=slide", "test_h=9"}).find("'test_h' is 9") != std::string::npos);
    CHECK(error_of({"eval_mode=whole", "test_h=9"}).empty());
    CHECK(error_of({"eval_mode=slide", "test_h=50", "test_w=41"}).empty());  // any size from 41 up
}

TEST_CASE("config: a key given twice in a config file is an error") {
    fs::create_directories("build/test_runs");
    std::ofstream("build/test_runs/twice.json") << "{\n  \"momentum\": 0.9,\n  // later\n  \"momentum\": 0.5\n}";
    CHECK_THROWS_WITH_AS(load_config("build/test_runs/twice.json", {}),
                         doctest::Contains("build/test_runs/twice.json: config key 'momentum' is given twice"), Error);
    std::ofstream("build/test_runs/once.json") << "{\"momentum\": 0.5, \"power\": 0.9}";
    CHECK(load_config("build/test_runs/once.json", {}).train.momentum == 0.5);
}

TEST_CASE("config: a misspelt key suggests the nearest keys instead of listing them all") {
    std::string e = error_of({"batchsize=8"});
    CHECK(e.find("command line: unknown config key 'batchsize'; did you mean 'batch_size'") != std::string::npos);
    CHECK(e.find("eval_output") == std::string::npos);  // not the whole list
    CHECK(error_of({"momentm=0.9"}).find("did you mean 'momentum'?") != std::string::npos);
    CHECK(error_of({"Momentum=0.9"}).find("did you mean 'momentum'?") != std::string::npos);
    CHECK(nearest_keys("widht").front() == "width");
    CHECK(nearest_keys("trainh").front() == "train_h");
    std::vector<std::string> lr = nearest_keys("lr");
    CHECK(lr == std::vector<std::string>{"base_lr", "head_lr_mult"});
    CHECK(error_of({"xyzzy=1"}).find("no key has a similar name") != std::string::npos);
    CHECK(error_of({"xyzzy=1"}).find("--help lists every key") != std::string::npos);
}

TEST_CASE("config: use_ppm, replaced by context, is an error that gives the new key") {
    for (const char* old : {"use_ppm=false", "use_ppm=true"})
        CHECK(error_of({old}).find("command line: config key 'use_ppm' was replaced: the context module is chosen by "
                                   "name now: use context=ppm for use_ppm=true (the default) and context=none for "
                                   "use_ppm=false") != std::string::npos);
    fs::create_directories("build/test_runs");
    std::ofstream("build/test_runs/old_ablation.json") << "{\"use_ppm\": false}";
    CHECK(error_of({}, "build/test_runs/old_ablation.json")
              .find("build/test_runs/old_ablation.json: config key 'use_ppm' was replaced") != std::string::npos);
    CHECK(load_config("", {}).model.context == "ppm");
    CHECK(load_config("", {"context=none"}).model.context == "none");
    CHECK(error_of({"context="}).find("config key 'context' is \"\"") != std::string::npos);
}

TEST_CASE("config: a list of strings may be written without quotes on the command line") {
    CHECK(load_config("", {"plugins=[build/plugins/aspp.so]"}).plugins == std::vector<std::string>{
                                                                               "build/plugins/aspp.so"});
    CHECK(load_config("", {"plugins=[a.so, b.so]"}).plugins == std::vector<std::string>{"a.so", "b.so"});
    CHECK(load_config("", {"plugins=[\"a.so\"]"}).plugins == std::vector<std::string>{"a.so"});
    CHECK(load_config("", {"plugins=[]"}).plugins.empty());
    // only for lists of strings: a list of numbers still has to be JSON
    CHECK(error_of({"bins=[1,x]"}).find("config key 'bins' must be a list of integers") != std::string::npos);
}

TEST_CASE("config: --help lists every key with its type, default and meaning") {
    std::string help = config_help();
    for (const KeySpec& s : config_schema()) {
        std::string line = "    " + s.name + "  " + allowed_values(s) + "; default " + s.default_value.dump() + "\n";
        CHECK_MESSAGE(help.find(line) != std::string::npos, line);
        CHECK_MESSAGE(help.find(s.meaning) != std::string::npos, s.name);
    }
    if (!fs::exists("build/bin/train") || !fs::exists("build/bin/eval") || !fs::exists("build/bin/infer")) {
        MESSAGE("build/bin/{train,eval,infer} not built: their --help is checked by make test");
        return;
    }
    for (const char* program : {"train", "eval", "infer"}) {
        ProgramResult r = run_program(std::string("build/bin/") + program + " --help");
        CHECK(r.code == 0);
        CHECK(r.output.find(std::string("usage: ") + program) != std::string::npos);
        CHECK_MESSAGE(r.output.find(help) != std::string::npos, program);
    }
}

TEST_CASE("config: error messages name the source line only with STRATA_DEBUG=1") {
    auto throw_one = [] { STRATA_CHECK(1 + 1 == 3, "arithmetic is broken"); };
    {
        DebugScope off(nullptr);
        CHECK_THROWS_WITH_AS(throw_one(), "arithmetic is broken", Error);
        try {
            throw_one();
        } catch (const Error& e) {
            CHECK(e.where().find("tests/models/test_config.cpp:") == 0);
        }
        DebugScope zero("0");
        CHECK_THROWS_WITH_AS(throw_one(), "arithmetic is broken", Error);
    }
    {
        DebugScope on("1");
        CHECK_THROWS_WITH_AS(throw_one(), doctest::Contains("arithmetic is broken (at tests/models/test_config.cpp:"),
                             Error);
    }
    if (!fs::exists("build/bin/train")) return;
    ProgramResult r = run_program("env -u STRATA_DEBUG build/bin/train momentum=2");
    CHECK(r.code == 1);
    CHECK(r.output.find("error: config key 'momentum' is 2") != std::string::npos);
    CHECK(r.output.find("(at ") == std::string::npos);
    r = run_program("STRATA_DEBUG=1 build/bin/train momentum=2");
    CHECK(r.code == 1);
    CHECK(r.output.find("(at models/pspnet/config.cpp:") != std::string::npos);
}

TEST_CASE("config: eval and infer given a run folder, or its config.json, use that run's settings") {
    std::string dir = "build/test_runs/config_run";
    fs::remove_all(dir);
    fs::create_directories(dir);
    // a run folder as train leaves it: its resolved config (run_dir where it was trained) and its weights
    RunConfig saved = load_config("", {"dataset=list", "data_root=/data/somewhere", "classes=5", "depth=18",
                                       "eval_mode=slide", "test_h=97", "test_w=97", "run_dir=runs/old_place"});
    std::ofstream(dir + "/config.json") << to_json(saved).dump(2);
    std::ofstream(dir + "/model.safetensors") << "";
    for (const std::string& path : {dir, dir + "/", dir + "/config.json"}) {
        CHECK(run_folder_of(command_line(path)) == dir);
        RunConfig c = load_program_config(command_line(path, {"eval_flip=true"}));
        CHECK(c.data.root == "/data/somewhere");
        CHECK(c.model.classes == 5);
        CHECK(c.model.backbone.depth == 18);
        CHECK(c.eval.protocol.crop_h == 97);
        CHECK(c.run_dir == dir);          // the folder given, wherever the run was trained
        CHECK(c.eval.protocol.flip);      // overrides still apply
    }
    CHECK(load_program_config(command_line(dir, {"run_dir=elsewhere", "data_root=/d"})).run_dir == "elsewhere");
    // a run folder's bad value is reported as coming from its file
    std::ofstream(dir + "/config.json") << nlohmann::json{{"momentum", 3}}.dump();
    std::string from_file = "is 3 (set in " + dir + "/config.json)";
    CHECK_THROWS_WITH_AS(load_program_config(command_line(dir)), doctest::Contains(from_file.c_str()), Error);
    // a plain config file is not a run folder
    CHECK(run_folder_of(command_line("configs/contextscenes.json")).empty());
    CHECK(load_program_config(command_line("configs/contextscenes.json")).run_dir == "runs/contextscenes");
    // a folder without a config.json
    fs::create_directories(dir + "/empty");
    CHECK_THROWS_WITH_AS(load_program_config(command_line(dir + "/empty")),
                         doctest::Contains("is a folder without a config.json"), Error);
}
