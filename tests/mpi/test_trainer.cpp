// Data-parallel PSPNet training (models/pspnet/trainer.cpp) on 2 ranks: 1 image per rank trains the weights one
// process trains on the batch of 2, the sharded evaluation counts what one process counts, a different model or a
// batch that does not split is refused at the start, and a checkpoint of 2 ranks resumes in one process. (A rank
// that throws during training is a scenario of tests/mpi/mpi_scenarios.cpp, run by tests/test_distributed.cpp.)
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/check.h"
#include "framework/safetensors.h"
#include "models/pspnet/eval_report.h"
#include "models/pspnet/trainer.h"
#include "tests/models/tiny_model.h"

using namespace strata;
using namespace strata::pspnet;
using strata::testing::quiet;
using strata::testing::tiny_run;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Communicator> world() {
    static std::shared_ptr<Communicator> comm = world_communicator();
    return comm;
}

// The tiny run with the global batch of 2 (1 image per rank), 5 steps, on the fixed-order GEMM, without dropout:
// every rank draws the same dropout masks for its own images (as in semseg, where every rank has the same seed),
// which one process on the whole batch does not.
RunConfig tiny_dp_run(const std::string& dir, std::vector<std::string> more = {}) {
    std::vector<std::string> keys = {"batch_size=2", "iterations=5", "reproducible=true", "save_predictions=0",
                                     "dropout=0"};
    keys.insert(keys.end(), more.begin(), more.end());
    return tiny_run(dir, keys);
}

TrainOptions on(std::shared_ptr<Communicator> comm) {
    TrainOptions o = quiet();
    o.comm = std::move(comm);
    return o;
}

// A fresh run folder: removed by rank 0 (which alone writes it), then every rank goes on.
std::string fresh_shared_dir(const std::string& dir) {
    if (world()->rank() == 0) fs::remove_all(dir);
    world()->barrier();
    return dir;
}

// Every tensor of two weight files agrees within float tolerance (the batch of 2 is summed in another order).
void check_same_weights(const std::string& a, const std::string& b) {
    std::map<std::string, Tensor> x = load_safetensors(a).as_map(), y = load_safetensors(b).as_map();
    REQUIRE(x.size() == y.size());
    for (const auto& [name, t] : x) {
        REQUIRE(y.count(name));
        CAPTURE(name);
        if (t.dtype() == DType::I64) {  // batch norm's step count
            CHECK(t.to_vector_i64() == y.at(name).to_vector_i64());
            continue;
        }
        std::vector<float> u = t.to_vector(), v = y.at(name).to_vector();
        REQUIRE(u.size() == v.size());
        double worst = 0;
        for (size_t i = 0; i < u.size(); ++i)
            worst = std::max(worst, std::abs(double(u[i]) - v[i]) / (1e-3 + std::abs(double(v[i]))));
        CHECK(worst < 1e-3);
    }
}

void check_same_losses(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-4));
}

}  // namespace

TEST_CASE("data-parallel training: 2 ranks x 1 image train what one process trains on the batch of 2") {
    const std::string dp = fresh_shared_dir("build/test_runs/mpi_dp");
    const std::string single = str("build/test_runs/mpi_dp_single", world()->rank());
    fs::remove_all(single);
    TrainResult parallel = train(tiny_dp_run(dp), on(world()));
    TrainResult alone = train(tiny_dp_run(single), on(make_single_process_communicator()));
    world()->barrier();  // rank 0 has written the weights
    CHECK(parallel.iteration == 5);
    check_same_losses(parallel.losses, alone.losses);  // the global batch's loss, on every rank
    check_same_weights(dp + "/model.safetensors", single + "/model.safetensors");

    SUBCASE("the sharded evaluation counts exactly what one process counts") {
        PSPNet model(tiny_dp_run(single).model);
        load_weights(single + "/model.safetensors", model, {});
        nlohmann::json sharded = evaluate_run(model, tiny_dp_run(dp), false, world().get());
        nlohmann::json whole = evaluate_run(model, tiny_dp_run(single), false, nullptr);
        CHECK(sharded["classes"] == whole["classes"]);  // per-class pixels, IoU and accuracy
        CHECK(sharded["mIoU"] == whole["mIoU"]);
        CHECK(sharded["labelled_pixels"] == whole["labelled_pixels"]);
        CHECK(sharded["ranks"] == 2);
    }
}

TEST_CASE("data-parallel training: a rank that built another model is refused at the start, on every rank") {
    const std::string dir = fresh_shared_dir("build/test_runs/mpi_dp_other");
    RunConfig c = tiny_dp_run(dir, {world()->rank() == 1 ? "width=0.25" : "width=0.125"});
    CHECK_THROWS_WITH_AS(train(c, on(world())), doctest::Contains("model differs from rank 0's"), Error);
}

TEST_CASE("data-parallel training: sync_bn=false keeps batch norm per rank, where the bin-1 branch cannot train") {
    // 1 image per rank: the PPM's 1x1 bin has one value per channel on each rank, 2 only over both ranks
    const std::string dir = fresh_shared_dir("build/test_runs/mpi_dp_local_bn");
    CHECK_THROWS_WITH_AS(train(tiny_dp_run(dir, {"sync_bn=false"}), on(world())),
                         doctest::Contains("expected more than 1 value per channel when training"), Error);
}

TEST_CASE("data-parallel training: a global batch that does not split evenly over the ranks is refused") {
    const std::string dir = fresh_shared_dir("build/test_runs/mpi_dp_odd");
    const double deadline = world()->options().timeout_seconds;
    CHECK_THROWS_WITH_AS(train(tiny_dp_run(dir, {"batch_size=3", "collective_timeout=19"}), on(world())),
                         doctest::Contains("batch_size=3 is the global batch, split evenly over the 2 ranks"), Error);
    CHECK(world()->options().timeout_seconds == 19);  // collective_timeout was applied first
    world()->set_timeout(deadline);
}

TEST_CASE("data-parallel training: a checkpoint written by 2 ranks resumes in one process and continues") {
    const std::string dp = fresh_shared_dir("build/test_runs/mpi_dp_resume");
    TrainOptions stop = on(world());
    stop.stop_after = 3;
    TrainResult first = train(tiny_dp_run(dp), stop);
    CHECK(first.interrupted);
    CHECK(first.iteration == 3);
    world()->barrier();  // rank 0 has written the checkpoint
    if (world()->rank() == 0) {
        TrainOptions resume = on(make_single_process_communicator());
        resume.resume = true;
        TrainResult second = train(tiny_dp_run(dp), resume);
        CHECK(second.iteration == 5);
        const std::string single = "build/test_runs/mpi_dp_resume_single";
        fs::remove_all(single);
        TrainResult alone = train(tiny_dp_run(single), on(make_single_process_communicator()));
        std::vector<float> joined = first.losses;
        joined.insert(joined.end(), second.losses.begin(), second.losses.end());
        check_same_losses(joined, alone.losses);
        check_same_weights(dp + "/model.safetensors", single + "/model.safetensors");
    }
    world()->barrier();
}
