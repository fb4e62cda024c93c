// The hard_swish example plugin's CUDA twin (plugins/examples/hard_swish.cu) against its CPU kernel, through the
// plugin loader: the emulated build of the plugin (cuda/cuda.mk: build/tests/plugins/hard_swish_emulated.so) is
// loaded into this program, whose CUDA backend is the emulator. Here rather than in cuda/tests/ because only the
// plain emulated program can load that build (the sanitizer programs have their own emulator build, the real one
// no emulator). Both kernels compute the same float expression, so forward and gradient agree bit for bit.
#include <doctest/doctest.h>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/plugin.h"
#include "framework/registration.h"
#include "framework/registry.h"
#include "framework/tensor.h"

using namespace strata;

TEST_CASE("plugins: hard_swish's CUDA twin matches its CPU kernel bit for bit (emulated, loaded as a plugin)") {
    if (skip_unless_cuda()) return;
    load_plugin("build/tests/plugins/hard_swish_emulated.so");
    std::shared_ptr<Module> hs = create_layer("hard_swish");
    auto op = [&](const Tensor& x) { return hs->forward(x); };
    // both flat pieces, the curve, the kinks themselves, and more elements than one block
    Tensor x = rand_uniform({3, 5, 17, 19}, -6.0f, 6.0f);
    std::vector<float> v = x.to_vector();
    v[0] = -3.0f, v[1] = 3.0f, v[2] = 0.0f;
    x = from_vector(v, x.shape());
    Tensor dy = randn(x.shape());
    ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
    ForwardBackward gpu = run_forward_backward(op, x, dy, kCuda0);
    CHECK(bitwise_difference(gpu.y, cpu.y) == "");
    CHECK(bitwise_difference(gpu.dx, cpu.dx) == "");
    CHECK(registration_owner("kernel", "hard_swish_forward on cuda") ==
          "plugin build/tests/plugins/hard_swish_emulated.so");
}

// docs/adding_a_layer.md's layer, from its finished files (docs/tutorial/swish.cpp and swish.cu): the check its
// section 5 tells the reader to run
TEST_CASE("plugins: the tutorial's swish CUDA twin matches its CPU kernel bit for bit (emulated, loaded as a plugin)") {
    if (skip_unless_cuda()) return;
    // a reader who followed the tutorial's section 6 has swish in the tree: then that one is checked
    if (registration_owner("layer", "swish") != "layers/swish.cpp")
        load_plugin("build/tests/plugins/swish_emulated.so");
    std::shared_ptr<Module> swish = create_layer("swish");
    auto op = [&](const Tensor& x) { return swish->forward(x); };
    // more elements than one block, and the overflow of exp(-x) for very negative x
    Tensor x = rand_uniform({3, 5, 17, 19}, -8.0f, 8.0f);
    std::vector<float> v = x.to_vector();
    v[0] = -100.0f, v[1] = 0.0f;
    x = from_vector(v, x.shape());
    Tensor dy = randn(x.shape());
    ForwardBackward cpu = run_forward_backward(op, x, dy, kCPU);
    ForwardBackward gpu = run_forward_backward(op, x, dy, kCuda0);
    CHECK(bitwise_difference(gpu.y, cpu.y) == "");
    CHECK(bitwise_difference(gpu.dx, cpu.dx) == "");
}
