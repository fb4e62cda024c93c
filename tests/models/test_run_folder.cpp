// The run folder under faults: resume validating its checkpoint, a lost optimizer state, metrics and checkpoint
// writes on a full disk (/dev/full), fsync before the rename, SIGTERM handled like Ctrl-C, the cleanup of partial
// checkpoints, and the lock that keeps two trainings out of one run_dir.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/models/run_program.h"
#include "framework/check.h"
#include "framework/optimizer.h"
#include "framework/safetensors.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/config.h"
#include "models/pspnet/run_folder.h"
#include "models/pspnet/trainer.h"
#include "tests/models/tiny_model.h"

using namespace strata;
using namespace strata::pspnet;
namespace fs = std::filesystem;

using strata::testing::ProgramResult;
using strata::testing::quiet;
using strata::testing::run_program;

namespace {

// the trainer tests' tiny run with `iterations`, a log line per step, semseg's base_lr and no panels
RunConfig tiny_run(const std::string& run_dir, int64_t iterations) {
    return strata::testing::tiny_run(run_dir, {"iterations=" + std::to_string(iterations), "log_every=1",
                                               "base_lr=0.01", "save_predictions=0"});
}

TrainOptions resuming() {
    TrainOptions o = quiet();
    o.resume = true;
    return o;
}

// A run of `iterations` stopped (with a checkpoint) after `done` of them.
void stopped_run(const std::string& dir, int64_t iterations, int64_t done) {
    fs::remove_all(dir);
    TrainOptions o = quiet();
    o.stop_after = done;
    REQUIRE(train(tiny_run(dir, iterations), o).iteration == done);
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }
void write_json(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(2) << "\n"; }

void resave_with_iteration(const std::string& path, const std::string& iteration) {
    SafetensorsFile f = load_safetensors(path);
    f.metadata["iteration"] = iteration;
    save_safetensors(path, f.tensors, f.metadata);
}

std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST_CASE("run folder: resume refuses an iteration out of range and files from another iteration") {
    const std::string dir = "build/test_runs/rundir_validate", ckpt = dir + "/checkpoints/";
    stopped_run(dir, 4, 2);
    const nlohmann::json good = read_json(ckpt + "iter_2.json");
    RunConfig c = tiny_run(dir, 4);

    SUBCASE("a negative iteration") {
        nlohmann::json bad = good;
        bad["iteration"] = -5;
        write_json(ckpt + "iter_2.json", bad);
        std::string e = error_of([&] { train(c, resuming()); });
        CHECK_MESSAGE(contains(e, "'iteration' must be an integer >= 0, got -5"), e);
    }
    SUBCASE("an iteration beyond the run's iterations") {
        c.train.iterations = 1;
        std::string e = error_of([&] { train(c, resuming()); });
        CHECK_MESSAGE(contains(e, "is at iteration 2 but the run has iterations = 1"), e);
    }
    SUBCASE("metadata that disagrees with the weights' own") {
        nlohmann::json bad = good;
        bad["iteration"] = 3;
        write_json(ckpt + "iter_2.json", bad);
        std::string e = error_of([&] { train(c, resuming()); });
        CHECK_MESSAGE(contains(e, "iter_2.json' says iteration 3 but '" + ckpt + "iter_2.safetensors' was saved at "
                                  "iteration 2"), e);
    }
    SUBCASE("an optimizer state from another iteration") {
        resave_with_iteration(ckpt + "iter_2.optim.safetensors", "1");
        std::string e = error_of([&] { train(c, resuming()); });
        CHECK_MESSAGE(contains(e, "says iteration 2 but '" + ckpt + "iter_2.optim.safetensors' was saved at "
                                  "iteration 1"), e);
    }
    SUBCASE("the untouched checkpoint resumes") {
        CHECK(train(c, resuming()).iteration == 4);
    }
}

TEST_CASE("run folder: a lost optimizer state is an error unless --reset-optimizer") {
    const std::string dir = "build/test_runs/rundir_optimizer", optim = dir + "/checkpoints/iter_2.optim.safetensors";
    stopped_run(dir, 3, 2);
    RunConfig c = tiny_run(dir, 3);
    SUBCASE("empty") { std::ofstream(optim, std::ios::trunc); }
    SUBCASE("missing") { fs::remove(optim); }
    SUBCASE("no momentum buffers") { save_safetensors(optim, {}, {{"iteration", "2"}}); }
    std::string e = error_of([&] { train(c, resuming()); });
    CHECK_MESSAGE(contains(e, optim), e);
    CHECK_MESSAGE(contains(e, "pass --reset-optimizer"), e);
    TrainOptions reset = resuming();
    reset.reset_optimizer = true;
    CHECK(train(c, reset).iteration == 3);
}

TEST_CASE("run folder: a metrics line that cannot be written is an error naming the file") {
    // /dev/full accepts the open and fails every write with ENOSPC, as a full disk does
    MetricsLog log("/dev/full");
    std::string e = error_of([&] { log.append(R"({"iteration": 1})"); });
    CHECK_MESSAGE(contains(e, "writing to '/dev/full' failed (No space left on device)"), e);
}

TEST_CASE("run folder: an atomic write is fsynced before its rename") {
    // fsync of /dev/null fails (EINVAL): a temporary file that links there shows whether the writer syncs before
    // it renames, and that a failed sync leaves the target as it was
    const std::string dir = "build/test_runs/rundir_fsync", path = dir + "/file.txt";
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(path) << "old\n";
    fs::create_symlink("/dev/null", path + ".tmp");
    std::string e = error_of([&] { write_file_atomically(path, "new\n"); });
    CHECK_MESSAGE(contains(e, "syncing (fsync) '" + path + ".tmp' failed"), e);
    CHECK(fs::is_regular_file(path));
    std::string content;
    std::ifstream(path) >> content;
    CHECK(content == "old");
    CHECK_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
    write_file_atomically(path, "new\n");  // and a normal write goes through
    std::ifstream(path) >> content;
    CHECK(content == "new");
}

TEST_CASE("run folder: a save that fails on a full disk removes its partial files and says what it needs") {
    const std::string dir = "build/test_runs/rundir_full", ckpt = dir + "/checkpoints/";
    fs::remove_all(dir);
    PSPNet model(tiny_run(dir, 4).model);
    SGD optimizer(model.parameters(), SGDOptions{});
    TrainingPosition pos;
    pos.iteration = 2;
    save_checkpoint(dir, model, optimizer, pos);
    // the optimizer file of the next save lands on a full disk: its weights file is already in place by then
    fs::create_symlink("/dev/full", ckpt + "iter_3.optim.safetensors.tmp");
    std::ofstream(ckpt + "iter_x.json") << "{}\n";  // a stray file that is not a checkpoint
    pos.iteration = 3;
    std::string e = error_of([&] { save_checkpoint(dir, model, optimizer, pos); });
    CHECK_MESSAGE(contains(e, "No space left on device"), e);
    CHECK_MESSAGE(contains(e, "A checkpoint needs "), e);
    uint64_t weight_bytes = 0;
    for (const auto& [n, t] : model.state_dict()) weight_bytes += uint64_t(t.numel()) * dtype_size(t.dtype());
    CHECK(checkpoint_bytes(model, optimizer) == weight_bytes);  // no momentum before the first step
    CHECK_MESSAGE(contains(e, "(" + std::to_string(weight_bytes) + " bytes of weights + 0 bytes of optimizer state)"),
                  e);
    CHECK_MESSAGE(contains(e, "The newest complete checkpoint is still " + ckpt + "iter_2.json"), e);
    CHECK(files_in(ckpt) == std::vector<std::string>{"iter_2.json", "iter_2.optim.safetensors", "iter_2.safetensors",
                                                     "iter_x.json", "latest"});
    // with space again the next save goes through, and the stray file does not get in the way
    pos.iteration = 4;
    save_checkpoint(dir, model, optimizer, pos);
    std::ifstream latest(ckpt + "latest");
    std::string name;
    latest >> name;
    CHECK(name == "iter_4.json");
}

TEST_CASE("run folder: resume removes what an interrupted save left behind") {
    const std::string dir = "build/test_runs/rundir_partial", ckpt = dir + "/checkpoints/";
    stopped_run(dir, 3, 2);
    // a crash during the save of iteration 3: its weights file is in place, the optimizer state half-written
    std::ofstream(ckpt + "iter_3.safetensors") << "partial";
    std::ofstream(ckpt + "iter_3.optim.safetensors.tmp") << "partial";
    std::ofstream(ckpt + "latest.tmp") << "iter_3";
    CHECK(train(tiny_run(dir, 3), resuming()).iteration == 3);
    for (const std::string& f : files_in(ckpt)) CHECK_MESSAGE(!contains(f, ".tmp"), f);
    CHECK(read_json(ckpt + "iter_3.json")["iteration"] == 3);
    CHECK(load_safetensors(ckpt + "iter_3.safetensors").metadata.at("iteration") == "3");
}

TEST_CASE("run folder: a second training on the same run_dir is refused") {
    const std::string dir = "build/test_runs/rundir_lock";
    fs::remove_all(dir);
    fs::create_directories(dir);
    RunConfig c = tiny_run(dir, 1);
    {
        RunFolderLock other(dir);  // a training already running there
        std::string e = error_of([&] { train(c, quiet()); });
        CHECK_MESSAGE(contains(e, "run_dir '" + dir + "' is in use by another training"), e);
        CHECK_FALSE(fs::exists(dir + "/metrics.jsonl"));
    }
    CHECK(train(c, quiet()).iteration == 1);  // once it is done, the folder is free
}

TEST_CASE("run folder: SIGTERM saves a checkpoint and exits with 143, and the run resumes") {
    // the program as a user runs it: SIGTERM from `kill`, then --resume (and --reset-optimizer) on the command line
    REQUIRE_MESSAGE(fs::exists("build/bin/train"), "build the programs first (make test does)");
    const std::string dir = "build/test_runs/rundir_sigterm", log = dir + ".log";
    fs::remove_all(dir);
    fs::create_directories(dir);
    write_json(dir + ".json", to_json(tiny_run(dir, 100000)));
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string cmd = "exec build/bin/train " + dir + ".json --no-eval > " + log + " 2>&1";
        execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
        _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(dir + "/metrics.jsonl") || fs::file_size(dir + "/metrics.jsonl") == 0) {
        REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "train did not start logging");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    std::ostringstream output;
    output << std::ifstream(log).rdbuf();
    CHECK_MESSAGE(WIFEXITED(status), output.str());
    CHECK_MESSAGE(WEXITSTATUS(status) == 143, output.str());
    REQUIRE(fs::exists(dir + "/checkpoints/latest"));
    std::string name;
    std::ifstream(dir + "/checkpoints/latest") >> name;
    int64_t stopped_at = read_json(dir + "/checkpoints/" + name)["iteration"];
    CHECK(stopped_at >= 1);
    CHECK_MESSAGE(contains(output.str(), "stopped by SIGTERM at iteration " + std::to_string(stopped_at) +
                                             "; checkpoint saved in " + dir + "/checkpoints/" + name),
                  output.str());
    // the checkpoint resumes; without its optimizer state only with --reset-optimizer
    CHECK(train(tiny_run(dir, stopped_at + 1), resuming()).iteration == stopped_at + 1);
    fs::remove(dir + "/checkpoints/iter_" + std::to_string(stopped_at + 1) + ".optim.safetensors");
    const std::string resume = "build/bin/train --resume --no-eval iterations=" + std::to_string(stopped_at + 2) +
                               " run_dir=" + dir;
    ProgramResult r = run_program(resume);
    CHECK(r.code == 1);
    CHECK_MESSAGE(contains(r.output, "pass --reset-optimizer"), r.output);
    r = run_program(resume + " --reset-optimizer");
    CHECK_MESSAGE(r.code == 0, r.output);
    CHECK_MESSAGE(contains(r.output, "--reset-optimizer: resuming with the momentum set to zero"), r.output);
}
