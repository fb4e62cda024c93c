// The CPU driver of the op-case table (tests/op_cases.h): for every entry, the gradient check of every F32 input,
// the same results on 1 and 4 threads, and the same results from non-contiguous inputs; and the check that every
// registered layer and CPU kernel has an entry.
#include <doctest/doctest.h>

#include <algorithm>

#include "tests/op_cases.h"
#include "tests/thread_scope.h"

using namespace strata;
using namespace strata::testing;

namespace {

struct Run {
    std::vector<float> y;
    std::vector<std::vector<float>> grads;  // one per F32 input
};

// y = f(inputs), then y.backward(dy) with dy drawn from `seed`; the output and the F32 inputs' gradients.
// `transposed`: each F32 input of rank >= 2 is passed as a non-contiguous view (a transposed copy transposed back:
// the same values, the last two strides swapped).
Run run_case(const OpCase& c, const std::vector<Tensor>& inputs, bool transposed) {
    std::vector<Tensor> leaves, args;
    for (const Tensor& x : inputs) {
        if (x.dtype() != DType::F32) {
            args.push_back(x);
            continue;
        }
        int64_t r = int64_t(x.shape().size());
        Tensor leaf = transposed && r >= 2 ? x.transpose(r - 2, r - 1).contiguous() : x.clone();
        leaf.requires_grad_();
        leaves.push_back(leaf);
        args.push_back(transposed && r >= 2 ? leaf.transpose(r - 2, r - 1) : leaf);
    }
    Tensor y = c.f(args);
    Generator gen(99);
    y.backward(randn(y.shape(), gen));
    Run run{y.to_vector(), {}};
    for (const Tensor& leaf : leaves) {
        Tensor g = leaf.grad();
        int64_t r = int64_t(g.shape().size());
        if (transposed && r >= 2) g = g.transpose(r - 2, r - 1);
        run.grads.push_back(g.contiguous().to_vector());
    }
    return run;
}

std::vector<Tensor> case_inputs(const OpCase& c, size_t index) {
    Generator gen(1000 + index);
    return c.inputs(gen);
}

}  // namespace

TEST_CASE("op cases: every registered layer and CPU kernel has an entry") {
    CHECK(!registered_kernels().empty());
    for (const std::string& gap : op_coverage_gaps(DeviceType::CPU))
        FAIL_CHECK(gap, " has no entry in tests/op_cases.h (docs/adding_an_op.md)");
}

TEST_CASE("op cases: gradient check of every input and parameter") {
    const std::vector<OpCase>& cases = op_cases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const OpCase& c = cases[i];
        if (!c.gradcheck) continue;
        std::vector<Tensor> inputs = case_inputs(c, i);
        for (Tensor& x : inputs)
            if (x.dtype() == DType::F32) x.requires_grad_();
        int64_t sampled = 0;
        for (const Tensor& x : inputs)
            if (x.dtype() == DType::F32) sampled += std::min(x.numel(), c.grad.max_points);
        int64_t compared = gradcheck(c.op + " " + c.variant, c.f, inputs, c.grad);
        CHECK(compared > 0);
        if (c.no_kinks) CHECK_MESSAGE(compared == sampled, c.op, " ", c.variant, ": a point was skipped as a kink");
    }
}

TEST_CASE("op cases: the same output and gradients on 1 and 4 threads") {
    const std::vector<OpCase>& cases = op_cases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const OpCase& c = cases[i];
        INFO(c.op, " ", c.variant);
        std::vector<Tensor> inputs = case_inputs(c, i);
        Run one, four;
        {
            ThreadCountScope scope(1);
            one = run_case(c, inputs, false);
        }
        {
            ThreadCountScope scope(4);
            four = run_case(c, inputs, false);
        }
        CHECK(one.y == four.y);
        CHECK(one.grads == four.grads);
    }
}

TEST_CASE("op cases: non-contiguous inputs give the same output and gradients") {
    const std::vector<OpCase>& cases = op_cases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const OpCase& c = cases[i];
        INFO(c.op, " ", c.variant);
        std::vector<Tensor> inputs = case_inputs(c, i);
        Run contiguous = run_case(c, inputs, false), strided = run_case(c, inputs, true);
        CHECK(contiguous.y == strided.y);
        CHECK(contiguous.grads == strided.grads);
    }
}
