// The run keys of the CPU speed work: `gemm` picks the GEMM for the run and only for it, `profile=1` profiles it.
#include <doctest/doctest.h>

#include <filesystem>

#include "framework/blas.h"
#include "framework/check.h"
#include "framework/profile.h"
#include "models/pspnet/config.h"
#include "models/pspnet/trainer.h"

using namespace strata;
using namespace strata::pspnet;

TEST_CASE("train: gemm=openblas holds for the run only, and profile=1 times its kernels") {
    const std::string dir = "build/test_runs/speed_keys";
    std::filesystem::remove_all(dir);
    RunConfig c = load_config("", {"dataset=contextscenes", "classes=8", "scene_size=73", "scene_min_gap=0",
                                        "scene_train=8", "scene_val=2", "depth=18", "blocks=[1,1,0,0]", "width=0.125",
                                        "train_h=73", "train_w=73", "batch_size=2", "iterations=2", "workers=0",
                                        "save_every=0", "gemm=openblas", "profile=true", "run_dir=" + dir});
    TrainOptions o;
    o.verbose = false;
    o.evaluate = false;
    REQUIRE(gemm_choice() == GemmChoice::kStrata);
    struct ProfilingOff {  // no report at the test program's exit, even when a check fails
        ~ProfilingOff() { set_profiling(false); }
    } off;
    train(c, o);
    CHECK(gemm_choice() == GemmChoice::kStrata);  // restored at the end of the run
    CHECK(profiling());
    std::string report = profile_report();
    CHECK(report.find("\nconv2d_forward ") != std::string::npos);
    CHECK(report.find("\nconv2d_backward ") != std::string::npos);
    CHECK_THROWS_WITH_AS(parse_gemm_choice("mkl"), doctest::Contains("strata"), Error);
}
