// Data-parallel training over NCCL, one GPU per rank, as `mpirun -np 2 train device=cuda` runs it (there the ranks
// are processes and the "nccl" factory bootstraps over MPI; here they are two host threads of one program, each
// with its own NCCL communicator, on cuda:0 and cuda:1): the trainer puts each rank's model on its
// communicator's GPU, and 1 image per rank trains the weights one process trains on the batch of 2. The emulated
// programs have two devices (two_devices.cu); the real program needs two GPUs and skips the case otherwise.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cuda/nccl_communicator.h"
#include "cuda/tests/helpers.h"
#include "framework/safetensors.h"
#include "models/pspnet/config.h"
#include "models/pspnet/trainer.h"

using namespace strata;
using namespace strata::pspnet;
namespace fs = std::filesystem;

namespace {

// A PSPNet small enough for the emulator, with the bin-1 pyramid branch (synchronized batch norm lets it train on
// 1 image per rank); no dropout, since every rank would draw the masks one process draws for its first image.
RunConfig run_config(const std::string& device, const std::string& dir) {
    return load_config("", {"dataset=contextscenes", "classes=8", "scene_size=73", "scene_min_gap=0",
                            "scene_train=8", "scene_val=1", "depth=18", "blocks=[1,1,0,0]", "width=0.0625",
                            "train_h=41", "train_w=41", "batch_size=2", "iterations=3", "workers=0", "log_every=1",
                            "save_every=0", "save_predictions=0", "dropout=0", "device=" + device,
                            "run_dir=" + dir});
}

TrainOptions quiet(std::shared_ptr<Communicator> comm) {
    TrainOptions o;
    o.verbose = false;
    o.evaluate = false;
    o.comm = std::move(comm);
    return o;
}

}  // namespace

TEST_CASE("cuda pspnet: data-parallel training over NCCL on cuda:0 and cuda:1 trains what one process trains") {
    if (skip_unless_cuda()) return;
    if (backend(DeviceType::CUDA).device_count() < 2) {
        testing::skip_test_case();
        return;
    }
    const std::string dp = "build/test_runs/trainer_nccl", single = "build/test_runs/trainer_nccl_single";
    fs::remove_all(dp);
    fs::remove_all(single);
    const std::vector<int64_t> id = nccl_unique_id();
    std::vector<TrainResult> results(2);
    std::vector<std::string> errors(2);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r) {
        ranks.emplace_back([&, r] {
            try {
                Communicator::Options options;
                options.timeout_seconds = 120;
                results[size_t(r)] = train(run_config("cuda", dp), quiet(make_nccl_communicator(id, r, 2, r, options)));
            } catch (const std::exception& e) {
                errors[size_t(r)] = e.what();
            }
        });
    }
    for (std::thread& t : ranks) t.join();
    REQUIRE(errors[0] == "");
    REQUIRE(errors[1] == "");
    TrainResult alone = train(run_config("cpu", single), quiet(make_single_process_communicator()));
    REQUIRE(alone.losses.size() == 3);
    for (int r = 0; r < 2; ++r) {
        REQUIRE(results[size_t(r)].losses.size() == 3);
        for (size_t i = 0; i < 3; ++i)
            CHECK(results[size_t(r)].losses[i] == doctest::Approx(alone.losses[i]).epsilon(1e-4));
    }
    SafetensorsFile a = load_safetensors(dp + "/model.safetensors"), b = load_safetensors(single + "/model.safetensors");
    REQUIRE(a.tensors.size() == b.tensors.size());
    double worst = 0;
    for (const auto& [name, t] : a.tensors) {
        if (t.dtype() != DType::F32) continue;
        std::vector<float> x = t.to_vector(), y = b.get(name).to_vector();
        REQUIRE(x.size() == y.size());
        for (size_t k = 0; k < x.size(); ++k)
            worst = std::max(worst, std::abs(double(x[k]) - y[k]) / (1e-3 + std::abs(double(y[k]))));
    }
    CHECK(worst < 1e-3);
}
