// The train, eval and infer programs as a user runs them: a short ContextScenes run, Ctrl-C during training
// (a checkpoint, then --resume to the end), evaluation of the saved weights, inference on a file, a folder and a
// list, eval and infer given the run folder, and the errors for a mistyped config key or a missing input. `make test`
// builds the programs first.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/models/run_program.h"
#include "data/contextscenes.h"
#include "data/image.h"
#include "framework/safetensors.h"
#include "models/pspnet/config.h"

namespace fs = std::filesystem;
using namespace strata;

using strata::testing::ProgramResult;
using strata::testing::run_program;

namespace {

const std::string kDir = "build/test_runs/programs";
// A tiny in-memory ContextScenes run (no disk dataset needed).
const std::string kRun = "dataset=contextscenes classes=8 scene_size=73 scene_min_gap=0 scene_train=32 scene_val=4 "
                         "depth=18 blocks=[1,1,0,0] width=0.125 train_h=73 train_w=73 batch_size=4 workers=0 "
                         "log_every=1 save_every=0 save_predictions=2 run_dir=" + kDir;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool programs_built() {
    for (const char* p : {"build/bin/train", "build/bin/eval", "build/bin/infer"})
        if (!fs::exists(p)) return false;
    return true;
}

}  // namespace

TEST_CASE("programs: train, Ctrl-C, resume, eval and infer end to end") {
    REQUIRE_MESSAGE(programs_built(), "build the programs first (make test does)");
    fs::remove_all(kDir);

    // A long run interrupted by SIGINT once it has logged an iteration: it saves a checkpoint and exits with 130.
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string cmd = "exec build/bin/train iterations=100000 --no-eval " + kRun + " > " + kDir + ".log 2>&1";
        fs::create_directories(kDir);
        execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
        _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(kDir + "/metrics.jsonl") || fs::file_size(kDir + "/metrics.jsonl") == 0) {
        REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "train did not start logging");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 130);
    REQUIRE(fs::exists(kDir + "/checkpoints/latest"));
    std::ifstream latest(kDir + "/checkpoints/latest");
    std::string name;
    latest >> name;
    int64_t stopped_at = nlohmann::json::parse(std::ifstream(kDir + "/checkpoints/" + name))["iteration"];
    CHECK(stopped_at >= 1);

    // --resume with a smaller total: it continues from the checkpoint to the end, then evaluates
    ProgramResult r = run_program("build/bin/train --resume iterations=" + std::to_string(stopped_at + 3) + " " + kRun);
    CHECK_MESSAGE(r.code == 0, r.output);
    CHECK(r.output.find("resuming " + kDir + " at iteration " + std::to_string(stopped_at)) != std::string::npos);
    CHECK(r.output.find("mIoU") != std::string::npos);
    for (const char* f : {"config.json", "model.safetensors", "eval/whole.json", "eval/whole/val_000000.png"})
        CHECK_MESSAGE(fs::exists(kDir + "/" + f), f);
    std::string whole = slurp(kDir + "/eval/whole.json");

    // eval on 2 MPI ranks: each evaluates its share of the images, the counts are summed: one process's mIoU
    r = run_program("MPI_TEST_TIMEOUT=60 tests/mpi/mpirun2.sh build/bin/eval " + kRun + " eval_output=" + kDir +
                    "/eval/two_ranks.json");
    CHECK_MESSAGE(r.code == 0, r.output);
    nlohmann::json sharded = nlohmann::json::parse(std::ifstream(kDir + "/eval/two_ranks.json"));
    nlohmann::json single = nlohmann::json::parse(whole);
    CHECK(sharded["ranks"] == 2);
    CHECK(sharded["mIoU"] == single["mIoU"]);
    CHECK(sharded["classes"] == single["classes"]);

    // eval of the saved weights, with the sliding-window protocol and flip, on 2 of the 4 images: its own output
    // file (the training's evaluation stays), progress lines (the output is a pipe here, not a terminal) and a
    // header that counts the images evaluated
    r = run_program("build/bin/eval " + kRun + " eval_mode=slide test_h=41 test_w=41 base_size=73 eval_flip=true "
            "max_eval_images=2");
    CHECK_MESSAGE(r.code == 0, r.output);
    nlohmann::json e = nlohmann::json::parse(std::ifstream(kDir + "/eval/slide_flip.json"));
    CHECK(e["mode"] == "slide");
    CHECK(e["flip"] == true);
    CHECK(e["classes"].size() == 8);
    CHECK(e["images"] == 2);
    CHECK(fs::exists(kDir + "/eval/slide_flip/val_000000.png"));
    CHECK(slurp(kDir + "/eval/whole.json") == whole);
    CHECK_MESSAGE(r.output.find("eval 1/2 images") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("eval 2/2 images") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("evaluation (slide_flip) of 2 images (max_eval_images=2) from") != std::string::npos,
                  r.output);
    CHECK(r.output.find("wrote " + kDir + "/eval/slide_flip.json") != std::string::npos);

    // eval and infer given the run folder (moved since training) or its config.json: the run's own settings
    std::string moved = kDir + "_moved";
    fs::remove_all(moved);
    fs::create_directories(moved);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(kDir + "/" + f, moved + "/" + f);
    r = run_program("build/bin/eval " + moved + " max_eval_images=2");
    CHECK_MESSAGE(r.code == 0, r.output);
    CHECK(r.output.find("mIoU") != std::string::npos);
    r = run_program("build/bin/infer " + moved + "/config.json --input " + kDir + "/eval/whole/val_000000.png --output " +
            moved + "/out");
    CHECK_MESSAGE(r.code == 0, r.output);
    CHECK(fs::exists(moved + "/out/val_000000.png"));
    // train refuses to start afresh over a run folder it is given
    r = run_program("build/bin/train " + moved);
    CHECK(r.code == 1);
    CHECK(r.output.find("is a run folder: continue it with --resume") != std::string::npos);

    // infer on one image, a folder and a list
    fs::create_directories(kDir + "/images");
    ContextScenesConfig sc;
    sc.size = 73;
    sc.min_gap = 0;
    for (int i = 0; i < 2; ++i)
        save_png(kDir + "/images/scene" + std::to_string(i) + ".png", generate_context_scene(sc, "val", i).image);
    std::ofstream(kDir + "/list.txt") << "images/scene0.png\nimages/scene1.png\n";
    for (const std::string& input : {kDir + "/images/scene0.png", kDir + "/images", kDir + "/list.txt"}) {
        fs::remove_all(kDir + "/out");
        r = run_program("build/bin/infer " + kRun + " --input " + input + " --output " + kDir + "/out");
        CHECK_MESSAGE(r.code == 0, r.output);
        LabelMap pred = load_label(kDir + "/out/scene0.png");  // a palette PNG: indices are the classes
        CHECK(pred.h == 73);
        for (int32_t v : pred.data) CHECK((v >= 0 && v < 8));
        CHECK(fs::exists(kDir + "/out/scene0_overlay.png"));
    }
}

TEST_CASE("programs: mistakes give one clear line and a non-zero exit code") {
    REQUIRE_MESSAGE(programs_built(), "build the programs first (make test does)");
    ProgramResult r = run_program("build/bin/train batchsize=4 " + kRun);
    CHECK(r.code == 1);
    CHECK(r.output.find("error: command line: unknown config key 'batchsize'; did you mean 'batch_size'") !=
          std::string::npos);
    r = run_program("build/bin/train --resum");
    CHECK(r.code == 1);
    CHECK(r.output.find("unknown option '--resum'") != std::string::npos);
    r = run_program("build/bin/infer " + kRun + " --input no/such/file.png --output " + kDir + "/out");
    CHECK(r.code == 1);
    CHECK(r.output.find("--input 'no/such/file.png' does not exist") != std::string::npos);
    r = run_program("build/bin/eval " + kRun + " weights=no/such.safetensors");
    CHECK(r.code == 1);
    CHECK(r.output.find("no weights at 'no/such.safetensors'") != std::string::npos);
    r = run_program("build/bin/train --resume run_dir=build/test_runs/never_trained");
    CHECK(r.code == 1);
    CHECK(r.output.find("--resume: no checkpoint in 'build/test_runs/never_trained'") != std::string::npos);
    r = run_program("build/bin/train device=tpu " + kRun);
    CHECK(r.code == 1);
    CHECK(r.output.find("unknown device 'tpu'") != std::string::npos);
}

TEST_CASE("programs: make_contextscenes writes the dataset configs/contextscenes.json trains on") {
    REQUIRE_MESSAGE(fs::exists("build/bin/make_contextscenes"), "build the programs first (make test does)");
    // its defaults are read from the config, so `make data` and `make train` cannot disagree
    nlohmann::json c = strata::pspnet::to_json(strata::pspnet::load_config("configs/contextscenes.json", {}));
    ProgramResult r = run_program("build/bin/make_contextscenes --help");
    CHECK(r.code == 0);
    for (std::string expected :
         {"out=" + c["data_root"].get<std::string>(), "size=" + std::to_string(c["scene_size"].get<int>()),
          "min_gap=" + std::to_string(c["scene_min_gap"].get<int>()),
          "train=" + std::to_string(c["scene_train"].get<int>()), "val=" + std::to_string(c["scene_val"].get<int>()),
          "seed=" + std::to_string(c["seed"].get<int>())})
        CHECK_MESSAGE(r.output.find(expected) != std::string::npos, expected, "\n", r.output);
    // another config's settings, and key=value on top
    std::string dir = "build/test_runs/make_contextscenes";
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir + "/scenes.json") << "{\"data_root\": \"" << dir << "/data\", \"scene_size\": 73, "
                                        << "\"scene_min_gap\": 0, \"scene_train\": 3, \"scene_val\": 2}";
    r = run_program("build/bin/make_contextscenes " + dir + "/scenes.json val=1");
    CHECK_MESSAGE(r.code == 0, r.output);
    CHECK(r.output.find("(3 train + 1 val, 73x73, seed 0)") != std::string::npos);
    CHECK(fs::exists(dir + "/data/ImageSets/Segmentation/train.txt"));
}
