// Two CUDA devices in one program: tensors of cuda:1 allocate, run kernels (elementwise, reductions, cuBLAS
// GEMM, convolution, batch norm) forward and backward, and copy to the host, within the device and to cuda:0 and
// back, giving the CPU's results; from a host thread whose current device is cuda:0, so the kernels only run where
// their tensors are because the dispatcher makes cuda:1 current (framework/dispatch.h). The emulated programs
// have two devices (two_devices.cu) and the emulator fails a kernel given memory of another device than the one it
// runs on; the real program runs this on a machine with two GPUs and skips it otherwise.
#include <doctest/doctest.h>

#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/mul.h"
#include "layers/relu.h"
#include "layers/sum.h"

using namespace strata;

namespace {

const Device kCuda1{DeviceType::CUDA, 1};

bool skip_unless_two_devices() {
    if (skip_unless_cuda()) return true;
    if (backend(DeviceType::CUDA).device_count() >= 2) return false;
    testing::skip_test_case();
    return true;
}

// A small network's loss and its parameters' gradients, all on `device`, returned on the host.
std::vector<std::vector<float>> run_network(Device device) {
    Generator gen(11);
    Tensor x = randn({2, 3, 6, 6}, gen).to(device);
    Tensor w = mul(randn({4, 3, 3, 3}, gen), 0.3f).to(device).requires_grad_();
    Tensor fc = mul(randn({5, 4 * 6 * 6}, gen), 0.1f).to(device).requires_grad_();
    Tensor running_mean = zeros({4}, DType::F32, device), running_var = ones({4}, DType::F32, device);
    Conv2dOptions conv;
    conv.padding = 1;
    Tensor h = relu(batchnorm2d(conv2d(x, w, Tensor(), conv), Tensor(), Tensor(), running_mean, running_var, true,
                                0.1f, 1e-5f));
    Tensor loss = sum(linear(h.reshape({2, 4 * 6 * 6}), fc));
    loss.backward();
    return {loss.to_vector(), w.grad().to_vector(), fc.grad().to_vector(), running_var.to_vector()};
}

}  // namespace

TEST_CASE("cuda two devices: a network on cuda:1 equals the CPU, and tensors move between the devices") {
    if (skip_unless_two_devices()) return;
    Tensor on_0 = zeros({1}, DType::F32, kCuda0);  // the thread's current device is cuda:0 from here
    std::vector<std::vector<float>> cpu = run_network(kCPU), gpu1 = run_network(kCuda1);
    REQUIRE(gpu1.size() == cpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) CHECK(difference_above(gpu1[i], cpu[i], 1e-4) == "");

    Generator gen(5);
    Tensor x = randn({3, 7}, gen);
    Tensor x1 = x.to(kCuda1);
    CHECK(x1.device() == kCuda1);
    Tensor x0 = x1.to(kCuda0);
    CHECK(x0.device() == kCuda0);
    Tensor back = x0.to(kCuda1).clone();
    CHECK(back.device() == kCuda1);
    CHECK(back.to_vector() == x.to_vector());
    Tensor y0 = zeros({3, 7}, DType::F32, kCuda0);
    y0.copy_(x1);
    CHECK(y0.to_vector() == x.to_vector());
    CHECK(sum(x1).to(kCuda0).to_vector() == sum(x0).to_vector());
}
