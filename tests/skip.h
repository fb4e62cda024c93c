// Runtime skips. A test case that cannot run on this machine (the real-CUDA program without a GPU) calls
// skip_test_case() and returns: the summary line then counts it as skipped, not passed ("N passed, M failed,
// K skipped"), so a green run never claims what it did not test. Defined in tests/main.cpp.
#pragma once

namespace strata::testing {

void skip_test_case();

}  // namespace strata::testing
