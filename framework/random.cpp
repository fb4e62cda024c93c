// Generator's non-inline parts: bounded integers and normals.
#include "framework/random.h"

#include <cmath>

namespace strata {

int64_t Generator::randint(int64_t n) {
    if (n <= 1) return 0;
    // Rejection sampling removes the modulo bias.
    uint64_t un = uint64_t(n);
    uint64_t limit = UINT64_MAX - UINT64_MAX % un;
    uint64_t r;
    do {
        r = next_u64();
    } while (r >= limit);
    return int64_t(r % un);
}

float Generator::normal() {
    // Box-Muller on two uniforms; u1 is taken in (0, 1] so that log(u1) is finite. One of the pair is used, so
    // each normal costs exactly two draws and the stream position stays easy to reason about.
    double u1 = 1.0 - double(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    double u2 = double(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

Generator& default_generator() {
    thread_local Generator gen(0);  // one per host thread: see random.h
    return gen;
}

void manual_seed(uint64_t seed) {
    default_generator().manual_seed(seed);
}

}  // namespace strata
