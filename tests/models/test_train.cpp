// The training loop end to end on a tiny PSPNet and in-memory ContextScenes: a checked-in 10-step loss trajectory,
// resume equal to an uninterrupted run, the run folder's files, and the checks train() makes itself (the config's
// own are in test_config.cpp).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "framework/check.h"
#include "models/pspnet/config.h"
#include "models/pspnet/trainer.h"
#include "tests/models/tiny_model.h"
#include "tests/thread_scope.h"

using namespace strata;
using namespace strata::pspnet;
using strata::testing::quiet;
using strata::testing::tiny_run;
namespace fs = std::filesystem;

namespace {

}  // namespace

TEST_CASE("train: the fixed-seed 10-step loss trajectory") {
    std::string dir = "build/test_runs/trajectory";
    fs::remove_all(dir);
    // Pinned to the fixed-order GEMM (framework/blas.h): with OpenBLAS the last bits of every GEMM depend on the
    // kernel it picks for the CPU (or OPENBLAS_CORETYPE) and on the thread count, and ten SGD steps amplify them to
    // several percent. With it every op of this run computes the same bits on every machine and thread count, so
    // the tolerance can be tight enough to catch any change to the computation. The rest of the run (augmentation,
    // the other ops) is plain C++ built with -ffp-contract=off (Makefile), so the compiler's choice of -march or
    // vectorisation does not fuse a * b + c differently either. Regenerate deliberately (print r.losses) when a
    // change is meant to alter the numerics.
    RunConfig c = tiny_run(dir);
    c.reproducible = true;
    TrainResult r = train(c, quiet());
    REQUIRE(r.losses.size() == 10);
    const std::vector<float> expected = {3.08281922f, 2.6511426f,  2.4673419f,  2.27595639f, 2.36982632f,
                                         1.99738431f, 1.78285098f, 2.4053154f,  2.52278709f, 1.85724711f};
    for (size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(i);
        CHECK(r.losses[i] == doctest::Approx(expected[i]).epsilon(1e-5));
    }
    CHECK(r.losses.back() < r.losses.front());
}

TEST_CASE("train: the reproducible trajectory is the same for 1, 2, 3 and 4 threads, bit for bit") {
    std::vector<float> first;
    for (int threads : {1, 2, 3, 4}) {
        CAPTURE(threads);
        std::string dir = "build/test_runs/trajectory_threads";
        fs::remove_all(dir);
        RunConfig c = tiny_run(dir);
        c.reproducible = true;
        c.train.iterations = 4;
        c.threads = threads;
        strata::testing::ThreadCountScope restore(threads);  // train() sets the count; this puts the old one back
        TrainResult r = train(c, quiet());
        if (first.empty()) first = r.losses;
        else CHECK(r.losses == first);
    }
}

TEST_CASE("train: an interrupted run resumed from its checkpoint gives the same losses") {
    std::string a = "build/test_runs/straight", b = "build/test_runs/resumed";
    fs::remove_all(a);
    fs::remove_all(b);
    RunConfig ca = tiny_run(a), cb = tiny_run(b);
    ca.train.iterations = 6;
    cb.train.iterations = 6;
    TrainResult straight = train(ca, quiet());
    TrainOptions stop = quiet();
    stop.stop_after = 3;
    TrainResult first = train(cb, stop);
    CHECK(first.interrupted);
    CHECK(first.iteration == 3);
    TrainOptions resume = quiet();
    resume.resume = true;
    TrainResult second = train(cb, resume);
    CHECK(second.iteration == 6);
    std::vector<float> joined = first.losses;
    joined.insert(joined.end(), second.losses.begin(), second.losses.end());
    CHECK(joined == straight.losses);  // bit for bit: weights, momentum, BN statistics, RNG and loader position
    // the metrics file of the resumed run has each iteration once
    std::ifstream m(b + "/metrics.jsonl");
    std::string line;
    std::vector<int64_t> its;
    while (std::getline(m, line)) its.push_back(nlohmann::json::parse(line)["iteration"]);
    CHECK(its == std::vector<int64_t>{2, 4, 6});
}

TEST_CASE("train: the run folder holds the config, metrics, checkpoints, weights and the evaluation") {
    std::string dir = "build/test_runs/folder";
    fs::remove_all(dir);
    RunConfig c = tiny_run(dir);
    c.train.iterations = 4;
    TrainOptions o = quiet();
    o.evaluate = true;
    TrainResult r = train(c, o);
    for (const char* f : {"config.json", "metrics.jsonl", "model.safetensors", "eval/whole.json", "checkpoints/latest",
                          "checkpoints/iter_4.json", "checkpoints/iter_4.safetensors",
                          "checkpoints/iter_4.optim.safetensors", "eval/whole/val_000000.png", "tensorboard"})
        CHECK_MESSAGE(fs::exists(fs::path(dir) / f), f);
    CHECK(r.eval["classes"].size() == 8);
    CHECK(r.eval["mIoU"].get<double>() >= 0.0);
    CHECK(nlohmann::json::parse(std::ifstream(dir + "/config.json"))["iterations"] == 4);
    TrainOptions again = quiet();
    again.resume = true;
    CHECK(train(c, again).losses.empty());  // already complete: nothing to do
}

TEST_CASE("train: a crop that is not 8k+1 is refused with the fix") {
    RunConfig c = tiny_run("build/test_runs/badcrop");
    c.data.train_h = 72;
    CHECK_THROWS_WITH_AS(train(c, quiet()), doctest::Contains("must be of the form 8k+1"), Error);
    c = tiny_run("build/test_runs/badclasses");
    c.model.classes = 21;
    CHECK_THROWS_WITH_AS(train(c, quiet()), doctest::Contains("has 8 classes; set classes=8"), Error);
}
