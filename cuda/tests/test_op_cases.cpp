// The CUDA driver of the op-case table (tests/op_cases.h): every entry runs forward and backward on the CPU and on
// the device, and the output and every input's gradient must agree (bitwise where the entry says 0, else within
// its tolerance). The emulated program runs once with each block's threads resumed in forward order and once in
// reverse (cuda_emu_tests_reverse), so a kernel whose result depends on the order its threads run fails one of
// them. Also checks that every kernel with a CUDA twin has an entry.
#include <doctest/doctest.h>

#include <algorithm>

#include "cuda/tests/gemm_parity.h"
#include "cuda/tests/helpers.h"
#include "cuda/tests/op_parity.h"
#include "tests/op_cases.h"

using namespace strata;
using namespace strata::testing;

namespace {

// The output gradient every run uses: randn of the output's shape from a fixed seed.
Tensor output_gradient(const Shape& shape) {
    Generator gen(99);
    return randn(shape, gen);
}

// y = f(inputs on `device`), y.backward(dy on `device`); the output and the F32 inputs' gradients on the host.
std::vector<std::vector<float>> run_on(const OpCase& c, const std::vector<Tensor>& inputs, Device device) {
    std::vector<Tensor> leaves, args;
    for (const Tensor& x : inputs) {
        Tensor leaf = x.clone();
        if (x.dtype() == DType::F32) leaves.push_back(leaf.requires_grad_());
        args.push_back(leaf.to(device));
    }
    Tensor y = c.f(args);
    STRATA_CHECK(y.device() == device, c.op, ": the output is on ", device_name(y.device()));
    y.backward(output_gradient(y.shape()).to(device));
    std::vector<std::vector<float>> results{y.to_vector()};
    for (const Tensor& leaf : leaves) results.push_back(leaf.grad().to_vector());
    return results;
}

// Runs the entries with gradcheck == `small` (the ones sized for the thread check are [large]: left out of the
// sanitizer programs, whose small entries run the same kernels).
void check_parity(bool small) {
    const std::vector<OpCase>& cases = op_cases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const OpCase& c = cases[i];
        if (c.gradcheck != small) continue;
        Generator gen(1000 + i);
        std::vector<Tensor> inputs = c.inputs(gen);
        std::vector<std::vector<float>> want = run_on(c, inputs, kCPU), got = run_on(c, inputs, kCuda0);
        REQUIRE(got.size() == want.size());
        Tensor dy = output_gradient(c.f(inputs).shape());
        for (size_t k = 0; k < got.size(); ++k) {
            INFO(c.op, " ", c.variant, k == 0 ? ": output" : str(": gradient of input ", k - 1));
            std::vector<double> tol(want[k].size(), c.parity_tol);
            if (c.parity_bound) tol = c.parity_bound(inputs, dy, want[k], k);
            bool bitwise = std::all_of(tol.begin(), tol.end(), [](double t) { return t == 0; });
            std::string difference =
                bitwise ? bitwise_difference(got[k], want[k]) : difference_beyond(got[k], want[k], tol);
            CHECK(difference == "");
        }
    }
}

}  // namespace

TEST_CASE("cuda op cases: output and gradients match the CPU") {
    if (skip_unless_cuda()) return;
    check_parity(true);
}

TEST_CASE("cuda op cases: the entries sized for threads match the CPU [large]") {
    if (skip_unless_cuda()) return;
    check_parity(false);
}

TEST_CASE("cuda op cases: every kernel with a CUDA twin has an entry") {
    if (skip_unless_cuda()) return;
    for (const std::string& gap : op_coverage_gaps(DeviceType::CUDA))
        FAIL_CHECK(gap, " has no entry in tests/op_cases.h (docs/adding_an_op.md)");
}
