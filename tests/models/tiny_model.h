// A tiny PSPNet in eval mode and random images, for the tests of prediction and evaluation.
#pragma once

#include <cstdint>

#include "data/image.h"
#include "framework/random.h"
#include "models/pspnet/pspnet.h"

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

}  // namespace strata::testing
