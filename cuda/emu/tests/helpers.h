// Small helpers for the emulator's own tests (cuda/emu/tests/): device buffers, the thread orders to run in, and
// the check that a test left no emulator report behind.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#include "cuda/emu/cuemu.h"

// A cudaMalloc'ed array of n T's, freed at scope exit.
template <typename T>
struct DeviceArray {
    T* ptr = nullptr;
    size_t n = 0;

    explicit DeviceArray(size_t count) : n(count) { REQUIRE(cudaMalloc(&ptr, n * sizeof(T)) == cudaSuccess); }
    explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
    ~DeviceArray() { cudaFree(ptr); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    void upload(const std::vector<T>& host) {
        REQUIRE(host.size() == n);
        REQUIRE(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    }
    std::vector<T> download() const {
        std::vector<T> host(n);
        REQUIRE(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
        return host;
    }
    void zero() { REQUIRE(cudaMemset(ptr, 0, n * sizeof(T)) == cudaSuccess); }
};

// Runs `body` once per resume order (forward, reverse, random), restoring the order afterwards. A kernel whose
// result depends on the order its threads run in between barriers has a race.
template <typename Body>
void for_each_order(Body body) {
    cuemu::Order saved = cuemu::settings().order;
    for (cuemu::Order order : {cuemu::Order::Forward, cuemu::Order::Reverse, cuemu::Order::Random}) {
        cuemu::settings().order = order;
        INFO("thread order: ", cuemu::order_name(order));
        body();
    }
    cuemu::settings().order = saved;
}

// After a test's launches: nothing failed and the emulator reported nothing.
inline void check_clean() {
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(cuemu::error_count() == 0);
    CHECK(cuemu::warning_count() == 0);
}
