// The project's own random numbers, identical on every platform and standard library.
//
// Generator is SplitMix64 used as a counter-based generator: the n-th draw is mix(seed + n * golden_gamma), where
// mix is SplitMix64's finaliser. Its whole state is (seed, counter), so a checkpoint can save it and a resumed run
// continues the same stream. Because any draw can be computed from (seed, index) alone, kernels that need many
// random numbers (dropout masks) take one 64-bit key from the Generator and compute random_u64(key, i) per element;
// a CUDA twin then produces exactly the same mask as the CPU kernel.
//
// Floats come from the top 24 bits (uniform in [0, 1)); normals from Box-Muller. std:: distributions are not used
// because their algorithms differ between standard libraries.
#pragma once

#include <cstdint>

namespace strata {

// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// The i-th 64-bit random number of stream `key`.
inline uint64_t random_u64(uint64_t key, uint64_t i) {
    return mix64(key + (i + 1) * 0x9E3779B97F4A7C15ULL);
}

// Uniform in [0, 1) with 24 random bits (every value is exactly representable in float).
inline float u64_to_unit_float(uint64_t r) {
    return float(r >> 40) * (1.0f / 16777216.0f);
}

class Generator {
public:
    explicit Generator(uint64_t seed = 0) : seed_(seed), counter_(0) {}

    void manual_seed(uint64_t seed) { seed_ = seed; counter_ = 0; }
    uint64_t seed() const { return seed_; }
    uint64_t counter() const { return counter_; }
    void set_state(uint64_t seed, uint64_t counter) { seed_ = seed; counter_ = counter; }

    uint64_t next_u64() { return random_u64(seed_, counter_++); }
    float uniform() { return u64_to_unit_float(next_u64()); }               // [0, 1)
    float uniform(float low, float high) { return low + (high - low) * uniform(); }
    int64_t randint(int64_t n);                                             // [0, n)
    float normal();                                                         // mean 0, std 1

private:
    uint64_t seed_;
    uint64_t counter_;
};

// The generator used when no Generator is passed (seeded 0; reseed with manual_seed): the calling host thread's.
// One per thread, because the data-parallel trainer may run its ranks as threads of one process (each on its own
// GPU, as the NCCL tests do) and every rank seeds and draws its model's initial weights as a process would: with
// one generator for the process, one rank's manual_seed and draws landed in the middle of the other's, so rank 0
// broadcast weights no single-process run makes (and the counter was a data race). A thread that draws seeds its
// own; manual_seed does not reach other threads.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace strata
