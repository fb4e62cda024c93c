// The training program's loop with device=cuda: models/pspnet/trainer.cpp moves the model before building the
// optimizer, moves every batch, computes the loss on the device, checkpoints device tensors and evaluates with
// device inputs. Two iterations on in-memory ContextScenes with device=cuda must give the CPU run's losses and
// weights, and the evaluation must see the same predictions. (The kernels themselves are compared op by op in the
// other files; this checks the plumbing a user runs with `train device=cuda`.)
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "cuda/tests/helpers.h"
#include "framework/safetensors.h"
#include "models/pspnet/config.h"
#include "models/pspnet/trainer.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

RunConfig run_config(const std::string& device, const std::string& dir) {
    return load_config("", {"dataset=contextscenes", "classes=8", "scene_size=73", "scene_min_gap=0",
                            "scene_train=8", "scene_val=1", "depth=18", "blocks=[1,1,0,0]", "width=0.0625",
                            "train_h=41", "train_w=41", "batch_size=2", "iterations=2", "workers=0", "log_every=1",
                            "save_every=0", "save_predictions=0", "device=" + device, "run_dir=" + dir});
}

}  // namespace

TEST_CASE("cuda pspnet: the trainer with device=cuda reproduces the CPU run") {
    if (skip_unless_cuda()) return;
    std::string cpu_dir = "build/test_runs/trainer_cpu", cuda_dir = "build/test_runs/trainer_cuda";
    std::filesystem::remove_all(cpu_dir);
    std::filesystem::remove_all(cuda_dir);
    TrainOptions o;
    o.verbose = false;
    TrainResult cpu = train(run_config("cpu", cpu_dir), o);
    TrainResult cuda = train(run_config("cuda", cuda_dir), o);
    REQUIRE(cpu.losses.size() == 2);
    REQUIRE(cuda.losses.size() == 2);
    for (size_t i = 0; i < 2; ++i) CHECK(cuda.losses[i] == doctest::Approx(cpu.losses[i]).epsilon(1e-5));
    // the saved weights (written from device tensors) agree
    SafetensorsFile a = load_safetensors(cpu_dir + "/model.safetensors"), b = load_safetensors(cuda_dir + "/model.safetensors");
    REQUIRE(a.tensors.size() == b.tensors.size());
    double worst = 0;
    for (size_t i = 0; i < a.tensors.size(); ++i) {
        if (a.tensors[i].second.dtype() != DType::F32) continue;
        std::vector<float> x = a.tensors[i].second.to_vector(), y = b.get(a.tensors[i].first).to_vector();
        for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::abs(double(x[k]) - y[k]) / (1 + std::abs(x[k])));
    }
    CHECK(worst < 1e-5);
    // and the evaluation on the device gives the CPU's metrics
    CHECK(cuda.eval["allAcc"].get<double>() == doctest::Approx(cpu.eval["allAcc"].get<double>()).epsilon(1e-6));
}
