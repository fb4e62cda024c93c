// The project's generator and the parallel-for: reproducible numbers, and loops covering every index once.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "framework/parallel.h"
#include "framework/random.h"

using namespace strata;

TEST_CASE("random: SplitMix64's published first outputs, so streams are the same everywhere") {
    // SplitMix64 seeded with 0 (Steele, Lea, Flood 2014; the reference in Vigna's xoshiro site) starts with these.
    Generator g(0);
    CHECK(g.next_u64() == 0xE220A8397B1DCDAFULL);
    CHECK(g.next_u64() == 0x6E789E6AA1B965F4ULL);
    CHECK(g.next_u64() == 0x06C45D188009454FULL);
    CHECK(g.counter() == 3);
    // any position can be computed directly from (seed, index): what dropout kernels rely on
    CHECK(random_u64(0, 2) == 0x06C45D188009454FULL);
}

TEST_CASE("random: state save and restore continue the same stream") {
    Generator a(123);
    for (int i = 0; i < 10; ++i) a.normal();
    Generator b;
    b.set_state(a.seed(), a.counter());
    for (int i = 0; i < 5; ++i) CHECK(a.uniform() == b.uniform());
}

TEST_CASE("random: the default generator is the calling thread's, so ranks run as threads draw as processes do") {
    // The NCCL trainer test runs two ranks as two threads; each seeds and draws its initial weights. Here a second
    // thread seeds and draws in the middle of this thread's stream (joined first, so the order is fixed): this
    // thread's stream must go on as if alone, and the other thread's starts from its own seed.
    manual_seed(5);
    Generator alone(5);
    for (int i = 0; i < 3; ++i) CHECK(default_generator().next_u64() == alone.next_u64());
    uint64_t first_of_fresh_thread = 0, other_seed = 0, other_counter = 0;
    std::thread other([&] {
        first_of_fresh_thread = default_generator().next_u64();
        manual_seed(9);
        for (int i = 0; i < 100; ++i) default_generator().normal();
        other_seed = default_generator().seed();
        other_counter = default_generator().counter();
    });
    other.join();
    CHECK(first_of_fresh_thread == Generator(0).next_u64());  // a new thread's generator is seeded 0
    CHECK(other_seed == 9);
    CHECK(other_counter == 200);
    CHECK(default_generator().seed() == 5);
    CHECK(default_generator().counter() == 3);
    for (int i = 0; i < 3; ++i) CHECK(default_generator().next_u64() == alone.next_u64());
}

TEST_CASE("random: distributions") {
    Generator g(5);
    int n = 20000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
        float x = g.normal();
        sum += x;
        sq += double(x) * x;
    }
    CHECK(std::abs(sum / n) < 0.03);
    CHECK(std::abs(sq / n - 1.0) < 0.05);
    std::vector<int> counts(7, 0);
    for (int i = 0; i < 7000; ++i) counts[size_t(g.randint(7))]++;
    for (int c : counts) CHECK((c > 850 && c < 1150));
    int outside = 0;
    for (int i = 0; i < 1000; ++i) {
        float u = g.uniform();
        outside += !(u >= 0.f && u < 1.f);
    }
    CHECK(outside == 0);
}

TEST_CASE("parallel_for: every index exactly once, for any size and grain") {
    for (int64_t n : {0, 1, 7, 1000, 100003}) {
        for (int64_t grain : {1, 64, 1 << 20}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
                for (int64_t i = lo; i < hi; ++i) hits[size_t(i)]++;
            });
            int64_t wrong = 0;
            for (int64_t i = 0; i < n; ++i) wrong += hits[size_t(i)] != 1;
            CHECK_MESSAGE(wrong == 0, "n=", n, " grain=", grain);
        }
    }
    int before = num_threads();
    set_num_threads(1);
    CHECK(num_threads() == 1);
    set_num_threads(before);
}
