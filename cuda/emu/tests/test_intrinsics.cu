// The emulator's intrinsics, each against what CUDA defines: thread coordinates, shuffles (with widths and
// sub-warp masks), votes, match, warp reductions, the __syncthreads variants, atomics and math. Most kernels run
// on a 48-thread block: one full warp and a partial warp of 16 lanes, where lanes 16-31 do not exist.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda/emu/tests/helpers.h"

namespace {

constexpr int kThreads = 48;  // warp 0: lanes 0-31; warp 1: lanes 0-15
constexpr int kSlots = 24;    // results per thread

__global__ void coordinates(int* out) {
    int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int id = block * blockDim.x * blockDim.y * blockDim.z + thread;
    out[4 * id + 0] = threadIdx.x + 10 * threadIdx.y + 100 * threadIdx.z;
    out[4 * id + 1] = blockIdx.x + 10 * blockIdx.y + 100 * blockIdx.z;
    out[4 * id + 2] = blockDim.x + 10 * blockDim.y + 100 * blockDim.z;
    out[4 * id + 3] = gridDim.x + 10 * gridDim.y + 100 * gridDim.z;
}

// Warp operations whose results every lane can check. `lanes` = the lanes of the caller's warp.
__global__ void warp_ops(int* out) {
    int t = threadIdx.x, lane = t % 32, warp = t / 32;
    unsigned mask = __activemask();  // warp 0: 0xffffffff, warp 1: 0x0000ffff
    int* o = out + t * kSlots;
    o[0] = int(mask);
    o[1] = __shfl_sync(mask, lane * 10, 3);                // lane 3's value
    o[2] = __shfl_sync(mask, lane, 2, 8);                  // lane 2 of the caller's group of 8
    o[3] = __shfl_up_sync(mask, lane, 1);                  // lane - 1; lane 0 keeps its own
    o[4] = __shfl_up_sync(mask, lane, 2, 8);               // lane - 2 within groups of 8
    o[5] = __shfl_down_sync(mask, lane, 1, 16);            // lane + 1 within groups of 16
    o[6] = __shfl_xor_sync(mask, lane, 5, 16);             // butterfly within groups of 16
    o[7] = int(__ballot_sync(mask, lane % 3 == 0));
    o[8] = __any_sync(mask, lane == 5) + 2 * __any_sync(mask, lane == 99);
    o[9] = __all_sync(mask, lane < 40) + 2 * __all_sync(mask, lane < 10);
    o[10] = int(__match_any_sync(mask, lane / 4));
    o[11] = int(__reduce_add_sync(mask, unsigned(lane)));
    o[12] = __reduce_min_sync(mask, lane - 5) * 1000 + __reduce_max_sync(mask, lane - 5);
    o[13] = int(__reduce_or_sync(mask, 1u << lane) ^ __reduce_xor_sync(mask, 1u));
    double d = __shfl_sync(mask, lane * 0.5, 7);
    o[14] = int(d * 2);                                    // 64-bit payload: 7
    long long big = __shfl_xor_sync(mask, (long long)lane << 40, 1);
    o[15] = int(big >> 40);                                // lane ^ 1
    // A sub-warp mask: only lanes 0-7 take part; the others skip it.
    o[16] = -1;
    if (lane < 8) o[16] = __shfl_sync(0xffu, lane + 100, 7);
    // Full-width operations only in the full warp (in warp 1, lanes 16-31 do not exist).
    o[17] = -1;
    if (warp == 0) o[17] = __shfl_xor_sync(0xffffffffu, lane, 16);
    // Divergent halves, each with its own mask and __syncwarp.
    unsigned half = lane < 8 ? 0xffu : (mask & ~0xffu);
    __syncwarp(half);
    o[18] = __popc(__ballot_sync(half, 1));
    __syncwarp(mask);
}

// The block-wide barrier variants: every thread of the 48 takes part.
__global__ void barrier_variants(int* out) {
    int t = threadIdx.x;
    int* o = out + t * 6;
    o[0] = __syncthreads_count(t % 2 == 0);
    o[1] = __syncthreads_and(t < 48);
    o[2] = __syncthreads_and(t < 47);
    o[3] = __syncthreads_or(t == 47);
    o[4] = __syncthreads_or(t > 100);
    o[5] = __syncthreads_count(1);
}

struct AtomicCells {
    int i_add, i_sub, i_min, i_max, i_exch, i_exch_sum, i_cas_count, i_and, i_or, i_xor;
    unsigned u_add, u_inc, u_dec;
    unsigned long long ull_add, ull_max;
    float f_add;
    double d_add;
};

__global__ void atomics(AtomicCells* c) {
    __shared__ int shared_count;
    int t = threadIdx.x + blockIdx.x * blockDim.x;
    if (threadIdx.x == 0) shared_count = 0;
    __syncthreads();
    atomicAdd(&shared_count, 2);
    atomicAdd(&c->i_add, t);
    atomicSub(&c->i_sub, 1);
    atomicMin(&c->i_min, 50 - t);
    atomicMax(&c->i_max, t * 3);
    atomicAdd(&c->i_exch_sum, atomicExch(&c->i_exch, t + 1) == 0 ? 1 : 0);  // exactly one thread sees the 0
    // an increment built from atomicCAS: retry until no other thread changed the value in between
    int seen = atomicAdd(&c->i_cas_count, 0);
    for (int prev; (prev = atomicCAS(&c->i_cas_count, seen, seen + 1)) != seen;) seen = prev;
    atomicAnd(&c->i_and, ~(1 << (t % 31)));
    atomicOr(&c->i_or, 1 << (t % 31));
    atomicXor(&c->i_xor, 1);
    atomicAdd(&c->u_add, 1u);
    atomicInc(&c->u_inc, 9u);  // counts 0..9 and wraps
    atomicDec(&c->u_dec, 9u);
    atomicAdd(&c->ull_add, 1ull << 33);
    atomicMax(&c->ull_max, (unsigned long long)t << 35);
    atomicAdd(&c->f_add, 0.5f);
    atomicAdd(&c->d_add, 0.25);
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(&c->i_add, shared_count * 1000);
}

__global__ void math(float* out) {
    out[0] = rsqrtf(4.0f);
    out[1] = __expf(0.0f) + __logf(1.0f);
    out[2] = __fdividef(1.0f, 4.0f);
    out[3] = fminf(2.0f, -3.0f) + fmaxf(2.0f, -3.0f);
    out[4] = __saturatef(1.5f) + __saturatef(-2.0f) + __saturatef(0.25f);
    out[5] = float(__float2int_rn(2.5f) + __float2int_rn(3.5f));  // round half to even: 2 + 4
    out[6] = float(__popc(0xf0f0u) + __clz(1) + __ffs(8));       // 8 + 31 + 4
    out[7] = __brev(1u) == 0x80000000u ? 1.0f : 0.0f;
    out[8] = float(min(-1, 1u) == 1u) + float(max(-1, 1u) == 0xffffffffu);  // unsigned wins, as in CUDA
    out[9] = __int_as_float(__float_as_int(1.5f));
    out[10] = float(__mulhi(1 << 30, 8) + __umul24(3u, 5u));    // 2 + 15
    out[11] = __ldg(&out[0]) * 2.0f;
}

}  // namespace

TEST_CASE("cuemu: thread and block coordinates in three dimensions") {
    dim3 grid(2, 3, 2), block(4, 3, 2);
    int threads = 2 * 3 * 2 * 4 * 3 * 2;
    DeviceArray<int> out(size_t(threads) * 4);
    CUEMU_LAUNCH(coordinates, grid, block, 0, 0, out.ptr);
    std::vector<int> got = out.download();
    int id = 0;
    for (unsigned bz = 0; bz < 2; ++bz)
        for (unsigned by = 0; by < 3; ++by)
            for (unsigned bx = 0; bx < 2; ++bx)
                for (unsigned tz = 0; tz < 2; ++tz)
                    for (unsigned ty = 0; ty < 3; ++ty)
                        for (unsigned tx = 0; tx < 4; ++tx, ++id) {
                            CHECK(got[4 * id + 0] == int(tx + 10 * ty + 100 * tz));
                            CHECK(got[4 * id + 1] == int(bx + 10 * by + 100 * bz));
                            CHECK(got[4 * id + 2] == 4 + 30 + 200);
                            CHECK(got[4 * id + 3] == 2 + 30 + 200);
                        }
    check_clean();
}

TEST_CASE("cuemu: warp shuffles, votes, match and reductions on a full and a partial warp") {
    DeviceArray<int> out(size_t(kThreads) * kSlots);
    for_each_order([&] {
        CUEMU_LAUNCH(warp_ops, 1, kThreads, 0, 0, out.ptr);
        std::vector<int> got = out.download();
        for (int t = 0; t < kThreads; ++t) {
            int lane = t % 32, warp = t / 32, lanes = warp == 0 ? 32 : 16;
            unsigned mask = warp == 0 ? 0xffffffffu : 0xffffu;
            const int* o = &got[size_t(t) * kSlots];
            INFO("thread ", t);
            CHECK(unsigned(o[0]) == mask);
            CHECK(o[1] == 30);
            CHECK(o[2] == (lane & ~7) + 2);
            CHECK(o[3] == (lane == 0 ? 0 : lane - 1));
            CHECK(o[4] == (lane % 8 >= 2 ? lane - 2 : lane));
            CHECK(o[5] == (lane % 16 < 15 ? lane + 1 : lane));
            CHECK(o[6] == (lane ^ 5));
            unsigned ballot = 0, same_group = 0;
            unsigned sum = 0;
            for (int l = 0; l < lanes; ++l) {
                if (l % 3 == 0) ballot |= 1u << l;
                if (l / 4 == lane / 4) same_group |= 1u << l;
                sum += unsigned(l);
            }
            CHECK(unsigned(o[7]) == ballot);
            CHECK(o[8] == 1);
            CHECK(o[9] == 1);
            CHECK(unsigned(o[10]) == same_group);
            CHECK(unsigned(o[11]) == sum);
            CHECK(o[12] == -5 * 1000 + (lanes - 1 - 5));
            CHECK(unsigned(o[13]) == (mask ^ (lanes % 2 ? 1u : 0u)));
            CHECK(o[14] == 7);
            CHECK(o[15] == (lane ^ 1));
            CHECK(o[16] == (lane < 8 ? 107 : -1));
            CHECK(o[17] == (warp == 0 ? lane ^ 16 : -1));
            CHECK(o[18] == (lane < 8 ? 8 : lanes - 8));
        }
    });
    check_clean();
}

TEST_CASE("cuemu: __syncthreads_count, _and and _or reduce over the block") {
    DeviceArray<int> out(size_t(kThreads) * 6);
    for_each_order([&] {
        CUEMU_LAUNCH(barrier_variants, 1, kThreads, 0, 0, out.ptr);
        std::vector<int> got = out.download();
        for (int t = 0; t < kThreads; ++t) {
            INFO("thread ", t);
            CHECK(got[size_t(t) * 6 + 0] == 24);
            CHECK(got[size_t(t) * 6 + 1] == 1);
            CHECK(got[size_t(t) * 6 + 2] == 0);
            CHECK(got[size_t(t) * 6 + 3] == 1);
            CHECK(got[size_t(t) * 6 + 4] == 0);
            CHECK(got[size_t(t) * 6 + 5] == kThreads);
        }
    });
    check_clean();
}

TEST_CASE("cuemu: atomics on int, unsigned, unsigned long long, float and double") {
    const int blocks = 3, threads = 40, n = blocks * threads;  // t = 0..119
    AtomicCells init{};
    init.i_min = 1000;
    init.i_max = -1000;
    init.i_and = -1;
    init.u_dec = 0;
    DeviceArray<AtomicCells> cells(1);
    for_each_order([&] {
        cells.upload({init});
        CUEMU_LAUNCH(atomics, blocks, threads, 0, 0, cells.ptr);
        AtomicCells c = cells.download()[0];
        CHECK(c.i_add == n * (n - 1) / 2 + blocks * threads * 2 * 1000);
        CHECK(c.i_sub == -n);
        CHECK(c.i_min == 50 - (n - 1));
        CHECK(c.i_max == 3 * (n - 1));
        CHECK(c.i_exch_sum == 1);
        CHECK(c.i_exch >= 1);
        CHECK(c.i_cas_count == n);
        CHECK(c.i_and == int(0x80000000u));  // bits 0-30 cleared
        CHECK(c.i_or == 0x7fffffff);
        CHECK(c.i_xor == 0);  // n is even
        CHECK(c.u_add == unsigned(n));
        CHECK(c.u_inc == unsigned(n % 10));
        CHECK(c.u_dec == unsigned((10 - n % 10) % 10));
        CHECK(c.ull_add == (unsigned long long)n << 33);
        CHECK(c.ull_max == (unsigned long long)(n - 1) << 35);
        CHECK(c.f_add == 0.5f * n);
        CHECK(c.d_add == 0.25 * n);
    });
    check_clean();
}

TEST_CASE("cuemu: math and bit intrinsics") {
    DeviceArray<float> out(12);
    CUEMU_LAUNCH(math, 1, 1, 0, 0, out.ptr);
    std::vector<float> got = out.download();
    std::vector<float> want = {0.5f, 1.0f, 0.25f, -1.0f, 1.25f, 6.0f, 43.0f, 1.0f, 2.0f, 1.5f, 17.0f, 1.0f};
    CHECK(got == want);
    check_clean();
}
