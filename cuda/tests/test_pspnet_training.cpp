// A few training steps of a tiny PSPNet on the device match the same steps on the CPU: the whole training path
// (every op's CUDA twin forward and backward, the autograd engine moving gradients on the device, SGD's update,
// batch norm's running statistics) against the CPU run, as models/pspnet/trainer.cpp does a step:
//     loss = cross_entropy(logits) + 0.4 * cross_entropy(aux_logits); zero_grad; backward; step.
//
// The two models are built from the same seed (the same initial weights); one is moved to cuda:0. Dropout2d (p =
// 0.1, as in PSPNet) draws one key per call from default_generator(), and its mask is a pure function of that key
// (layers/dropout2d.h), so each side's forward starts from the same generator state: both draw the same keys and
// drop the same planes (a different mask moves the loss by ~1e-2; checked below, so the tolerance would notice).
//
// Tolerance. Each op on either side matches the other to within a few float roundings (the ops' parity tests), so
// the runs start ~1e-7 apart relative. Batch norm divides by the batch's standard deviation, which for the pyramid's
// pooled 1x1 and 2x2 maps of a batch of 2 is a statistic of 2..8 values: a small sigma amplifies those differences,
// and three SGD steps (momentum 0.9, head LR 10x) carry them into the weights. Measured in the emulated build: the
// losses agree within 6e-7 relative, parameters and buffers within 8e-7 * (1 + |value|) (the pyramid's BN running
// variances are the worst). The tolerances, 1e-5 relative on each loss and 1e-5 * (1 + |value|) on every parameter
// and buffer element, leave a margin of more than 10 for what a GPU adds (fused multiply-adds, cuBLAS's summation
// order), and are still ~1e4 times smaller than the loss change from a different dropout mask (~12%, asserted
// below to be > 100 tolerances) or than one step of a wrong update (lr * |grad|, 1e-3..1e-2).
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/tests/helpers.h"
#include "framework/check.h"
#include "framework/optimizer.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/pspnet.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

constexpr double kLossTolerance = 1e-5;   // relative, per step
constexpr double kStateTolerance = 1e-5;  // times (1 + |value|), per parameter and buffer element

PSPNetConfig tiny_config() {
    PSPNetConfig c;
    c.backbone.depth = 18;
    c.backbone.blocks = {1, 1, 1, 1};
    c.backbone.width = 1.0 / 16;  // channels 4, 8, 16, 32; the PPM adds 4 x 8; heads of 32 and 16
    c.classes = 3;
    c.dropout = 0.1;
    return c;
}

// The trainer's optimizer: the backbone at the base LR, the heads at 10x.
std::unique_ptr<SGD> make_sgd(const PSPNet& model) {
    auto tensors = [](const NamedTensors& named) {
        std::vector<Tensor> out;
        for (const auto& [name, t] : named) out.push_back(t);
        return out;
    };
    SGDOptions o;
    o.lr = 0.01f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    return std::make_unique<SGD>(std::vector<ParamGroup>{{"backbone", tensors(model.backbone_parameters()), 1.0f},
                                                         {"head", tensors(model.head_parameters()), 10.0f}},
                                 o);
}

// One training step on the model's device; returns the loss.
float train_step(PSPNet& model, SGD& sgd, const Tensor& images, const Tensor& labels) {
    PSPNetOutput out = model.forward_all(images);
    Tensor loss = cross_entropy(out.logits, labels) + cross_entropy(out.aux_logits, labels) * 0.4f;
    sgd.zero_grad();
    loss.backward();
    sgd.step();
    return loss.item();
}

// "" when |got - want| <= kStateTolerance * (1 + |want|) everywhere, else the first element beyond it.
std::string state_difference(const std::vector<float>& got, const std::vector<float>& want) {
    if (got.size() != want.size()) return str("sizes differ: ", got.size(), " vs ", want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        double error = std::fabs(double(got[i]) - double(want[i]));
        if (!(error <= kStateTolerance * (1 + std::fabs(double(want[i])))))
            return str("element ", i, ": got ", got[i], ", want ", want[i], ", error ", error);
    }
    return "";
}

// Labels in [0, 3) with about one pixel in eight ignored (255).
Tensor random_labels(int64_t n, int64_t h, int64_t w, Generator& gen) {
    std::vector<int32_t> v(size_t(n * h * w));
    for (int32_t& l : v) l = gen.randint(8) == 0 ? 255 : int32_t(gen.randint(3));
    return from_vector_i32(v, {n, h, w});
}

}  // namespace

TEST_CASE("cuda pspnet: three training steps on the device match the CPU's") {
    if (skip_unless_cuda()) return;
    manual_seed(2024);
    PSPNet cpu_model(tiny_config());
    manual_seed(2024);
    PSPNet cuda_model(tiny_config());
    cuda_model.to(kCuda0);
    cpu_model.train();
    cuda_model.train();
    std::unique_ptr<SGD> cpu_sgd = make_sgd(cpu_model), cuda_sgd = make_sgd(cuda_model);

    Generator gen(501);
    Tensor images = randn({2, 3, 17, 17}, gen);
    Tensor labels = random_labels(2, 17, 17, gen);
    Tensor cuda_images = images.to(kCuda0), cuda_labels = labels.to(kCuda0);

    Generator& dropout_gen = default_generator();
    for (int step = 1; step <= 3; ++step) {
        INFO("step ", step);
        uint64_t seed = dropout_gen.seed(), counter = dropout_gen.counter();
        float cpu_loss = train_step(cpu_model, *cpu_sgd, images, labels);
        dropout_gen.set_state(seed, counter);  // the same dropout keys for the device's step
        float cuda_loss = train_step(cuda_model, *cuda_sgd, cuda_images, cuda_labels);
        CHECK(std::isfinite(cpu_loss));
        CHECK(std::fabs(double(cuda_loss) - double(cpu_loss)) <= kLossTolerance * std::fabs(double(cpu_loss)));
    }

    std::map<std::string, Tensor> cpu_state;
    for (const auto& [name, t] : cpu_model.state_dict()) cpu_state[name] = t;
    size_t compared = 0;
    for (const auto& [name, t] : cuda_model.state_dict()) {
        INFO("tensor ", name);
        CHECK(t.device() == kCuda0);
        REQUIRE(cpu_state.count(name) == 1);
        const Tensor& want_t = cpu_state[name];
        ++compared;
        if (want_t.dtype() != DType::F32) {  // BN's num_batches_tracked
            CHECK(t.to_vector_i64() == want_t.to_vector_i64());
            continue;
        }
        CHECK(state_difference(t.to_vector(), want_t.to_vector()) == "");
    }
    CHECK(compared == cpu_state.size());
}

TEST_CASE("cuda pspnet: a different dropout mask changes the loss far beyond the parity tolerance") {
    if (skip_unless_cuda()) return;
    manual_seed(2024);
    PSPNet model(tiny_config());
    model.train();
    Generator gen(501);
    Tensor images = randn({2, 3, 17, 17}, gen);
    Tensor labels = random_labels(2, 17, 17, gen);
    auto loss_with_key_state = [&](uint64_t counter) {
        default_generator().set_state(7, counter);
        PSPNetOutput out = model.forward_all(images);
        return double((cross_entropy(out.logits, labels) + cross_entropy(out.aux_logits, labels) * 0.4f).item());
    };
    double a = loss_with_key_state(0), b = loss_with_key_state(10);
    CHECK(std::fabs(a - b) > 100 * kLossTolerance * std::fabs(a));
}
