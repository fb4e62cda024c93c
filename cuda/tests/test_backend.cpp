// The CUDA backend through the Strata API: tensors on "cuda", the device backend (allocator, copies, fill), the
// tensor core's kernels, and relu's NaN rule (its parity: tests/op_cases.h). Plain C++ (no CUDA header): the same
// object is linked into the emulated test program, where the CUDA backend runs on the emulator, and into the real
// one, where these cases are skipped when no GPU is present (link_check.cu says so).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "framework/check.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/relu.h"

using namespace strata;

TEST_CASE("cuda backend: tensors move to the device and back") {
    if (skip_unless_cuda()) return;
    Generator gen(7);
    Tensor x = randn({3, 5, 7}, gen);
    Tensor xc = x.to(kCuda0);
    CHECK(xc.device() == kCuda0);
    CHECK(xc.to_vector() == x.to_vector());
    CHECK(xc.to(kCPU).to_vector() == x.to_vector());

    // a device-to-device copy, and copy_ across devices
    Tensor yc = xc.clone();
    CHECK(yc.device() == kCuda0);
    CHECK(yc.to_vector() == x.to_vector());
    Tensor z = zeros({3, 5, 7});
    z.copy_(yc);
    CHECK(z.to_vector() == x.to_vector());

    // zeros (memset) and fill_ (the fill kernel) on the device
    CHECK(zeros({4, 6}, DType::F32, kCuda0).to_vector() == std::vector<float>(24, 0.0f));
    Tensor f = empty({9}, DType::F32, kCuda0);
    f.fill_(2.5f);
    CHECK(f.to_vector() == std::vector<float>(9, 2.5f));
}

TEST_CASE("cuda backend: strided views are made contiguous on the device") {
    if (skip_unless_cuda()) return;
    Generator gen(8);
    Tensor x = randn({4, 6, 5}, gen);
    Tensor xc = x.to(kCuda0);
    Tensor want = x.permute({2, 0, 1}).contiguous();
    Tensor got = xc.permute({2, 0, 1}).contiguous();  // copy_strided on the device
    CHECK(got.device() == kCuda0);
    CHECK(got.shape() == want.shape());
    CHECK(got.to_vector() == want.to_vector());
    CHECK(xc.narrow(1, 2, 3).contiguous().to_vector() == x.narrow(1, 2, 3).contiguous().to_vector());
}

TEST_CASE("cuda backend: the caching allocator hands a freed block out again") {
    if (skip_unless_cuda()) return;
    void* first = nullptr;
    {
        Tensor a = empty({1000}, DType::F32, kCuda0);
        first = a.raw();
    }
    Tensor b = empty({1000}, DType::F32, kCuda0);
    CHECK(b.raw() == first);
}

TEST_CASE("cuda backend: relu keeps NaN and passes its gradient, as the CPU does") {
    if (skip_unless_cuda()) return;
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    Tensor x = from_vector({nan, -1.f, 0.f, inf, -inf, 2.f, -nan}, {7});
    Tensor dy = from_vector({1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f}, {7});
    auto run = [&](Device device) {
        Tensor x_leaf = x.clone().requires_grad_();
        Tensor y = relu(x_leaf.to(device));
        y.backward(dy.to(device));
        return std::make_pair(y.to_vector(), x_leaf.grad().to_vector());
    };
    auto [y_cpu, dx_cpu] = run(kCPU);
    auto [y_cuda, dx_cuda] = run(kCuda0);
    CHECK(std::isnan(y_cuda[0]));
    CHECK(std::isnan(y_cuda[6]));
    CHECK(dx_cuda == std::vector<float>{1.f, 0.f, 0.f, 4.f, 0.f, 6.f, 7.f});
    CHECK(bitwise_difference(y_cuda, y_cpu) == "");  // the same NaN bits too
    CHECK(bitwise_difference(dx_cuda, dx_cpu) == "");
}

TEST_CASE("cuda backend: a device that does not exist is a clear error") {
    if (skip_unless_cuda()) return;
    int count = backend(DeviceType::CUDA).device_count();
    Device missing{DeviceType::CUDA, count};
    CHECK_THROWS_WITH_AS(zeros({2}).to(missing), doctest::Contains("is not available: this machine has"), Error);
}
