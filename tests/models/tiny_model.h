// A tiny PSPNet in eval mode and random images, for the tests of prediction and evaluation, and the tiny training
// run of the trainer's tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "framework/random.h"
#include "models/pspnet/pspnet.h"
#include "models/pspnet/trainer.h"

namespace strata::testing {

// ResNet-18 blocks at 1/16 width, 4 classes, initialised from `seed`.
inline pspnet::PSPNet tiny_eval_model(uint64_t seed) {
    manual_seed(seed);
    pspnet::PSPNetConfig c;
    c.backbone.depth = 18;
    c.backbone.width = 1.0 / 16;
    c.classes = 4;
    pspnet::PSPNet m(c);
    m.eval();
    return m;
}

// An h x w RGB image of uniform random bytes.
inline Image random_image(int h, int w, uint64_t seed) {
    Generator g(seed);
    Image im(h, w, 3);
    for (auto& v : im.data) v = uint8_t(g.randint(256));
    return im;
}

// Two 25 x 25 random images and their labels, a batch a small PSPNet can overfit: a top band class 0, the left half
// class 1, the right half class 2, the last row ignored (255).
struct TinyBatch {
    Tensor images, labels;
};
inline TinyBatch overfit_batch() {
    Generator gen(9);
    std::vector<int32_t> lab(2 * 25 * 25);
    for (int n = 0; n < 2; ++n)
        for (int y = 0; y < 25; ++y)
            for (int x = 0; x < 25; ++x)
                lab[size_t((n * 25 + y) * 25 + x)] = y == 24 ? 255 : y < 6 ? 0 : x < 12 ? 1 : 2;
    Tensor images = randn({2, 3, 25, 25}, gen);
    return {images, from_vector_i32(lab, {2, 25, 25})};
}

// ContextScenes at 73 x 73 (8 classes, 32 training images), ResNet-18 blocks [1,1,0,0] at 1/8 width, batches of 4,
// 10 iterations at base_lr 0.02, loading in the training thread, into run_dir; `more` (key=value) on top.
inline pspnet::RunConfig tiny_run(const std::string& run_dir, std::vector<std::string> more = {}) {
    std::vector<std::string> keys = {"dataset=contextscenes", "classes=8", "scene_size=73", "scene_min_gap=0",
                                     "scene_train=32", "scene_val=4", "depth=18", "blocks=[1,1,0,0]",
                                     "width=0.125", "train_h=73", "train_w=73", "batch_size=4", "iterations=10",
                                     "base_lr=0.02", "workers=0", "log_every=2", "save_every=0",
                                     "save_predictions=2", "run_dir=" + run_dir};
    keys.insert(keys.end(), more.begin(), more.end());
    return pspnet::load_config("", keys);
}

// Training without progress lines or the final evaluation.
inline pspnet::TrainOptions quiet() {
    pspnet::TrainOptions o;
    o.verbose = false;
    o.evaluate = false;
    return o;
}

}  // namespace strata::testing
