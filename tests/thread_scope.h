// Sets the thread count for a scope and restores the previous one, even when a check fails: for tests that
// compare results across thread counts.
#pragma once

#include "framework/parallel.h"

namespace strata::testing {

struct ThreadCountScope {
    int saved = num_threads();
    explicit ThreadCountScope(int n) { set_num_threads(n); }
    ~ThreadCountScope() { set_num_threads(saved); }
};

}  // namespace strata::testing
