// count_nonfinite on the CPU and the host side of the multi-tensor check (see finite.h).
//
// A float is NaN or +-Inf exactly when its 8 exponent bits are all ones. The loop counts those with integer
// operations on the bits (no branches, so the compiler vectorises it, and -ffast-math could not fold it away as it
// may fold std::isfinite); only a chunk that holds one is scanned again for the first index.
#include "framework/finite.h"

#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>

#include "framework/check.h"
#include "framework/parallel.h"

namespace strata {

constinit KernelTable<count_nonfinite_fn> count_nonfinite_kernel{"count_nonfinite"};

namespace {

inline bool nonfinite_bits(uint32_t bits) { return (bits & 0x7f800000u) == 0x7f800000u; }

void count_nonfinite_cpu(int64_t* counts, const float* x, int64_t n) {
    std::atomic<int64_t> count{0}, first{counts[1]};
    parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
        int64_t bad = 0;
        for (int64_t i = lo; i < hi; ++i) {
            uint32_t bits;
            std::memcpy(&bits, x + i, 4);
            bad += nonfinite_bits(bits) ? 1 : 0;
        }
        if (bad == 0) return;
        count += bad;
        int64_t i = lo;
        for (;; ++i) {
            uint32_t bits;
            std::memcpy(&bits, x + i, 4);
            if (nonfinite_bits(bits)) break;
        }
        int64_t seen = first.load();
        while (i < seen && !first.compare_exchange_weak(seen, i)) {
        }
    });
    counts[0] += count.load();
    counts[1] = first.load();
}

}  // namespace

REGISTER_KERNEL(count_nonfinite_kernel, DeviceType::CPU, count_nonfinite_cpu);

std::vector<NonFinite> count_nonfinite(const std::vector<Tensor>& tensors) {
    std::vector<NonFinite> out(tensors.size());
    // Per device: the tensors on it and one buffer of two counters per tensor, read back with a single copy.
    std::map<std::pair<int, int>, std::vector<size_t>> by_device;
    for (size_t i = 0; i < tensors.size(); ++i) {
        // integers (BatchNorm's num_batches_tracked) have no NaN or Inf
        if (!tensors[i].defined() || tensors[i].numel() == 0 || tensors[i].dtype() != DType::F32) continue;
        Device d = tensors[i].device();
        by_device[{int(d.type), d.index}].push_back(i);
    }
    for (auto& [key, indices] : by_device) {
        Device device = tensors[indices.front()].device();
        std::vector<int64_t> init(2 * indices.size());
        for (size_t k = 0; k < indices.size(); ++k) init[2 * k] = 0, init[2 * k + 1] = INT64_MAX;
        Tensor counts = from_vector_i64(init, {int64_t(init.size())}).to(device);
        for (size_t k = 0; k < indices.size(); ++k) {
            Tensor t = tensors[indices[k]].contiguous();
            count_nonfinite_kernel[device](counts.i64() + 2 * k, t.f32(), t.numel());
        }
        std::vector<int64_t> host = counts.to_vector_i64();
        for (size_t k = 0; k < indices.size(); ++k)
            out[indices[k]] = {host[2 * k], host[2 * k] > 0 ? host[2 * k + 1] : -1};
    }
    return out;
}

NonFinite count_nonfinite(const Tensor& t) { return count_nonfinite(std::vector<Tensor>{t})[0]; }

std::optional<NonFiniteTensor> find_nonfinite(const NamedTensors& tensors) {
    std::vector<Tensor> list;
    for (auto& [name, t] : tensors) list.push_back(t);
    std::vector<NonFinite> found = count_nonfinite(list);
    std::optional<NonFiniteTensor> result;
    for (size_t i = 0; i < found.size(); ++i) {
        if (!found[i].any()) continue;
        if (!result) {
            const Tensor& t = tensors[i].second;
            float value = t.contiguous().reshape({t.numel()}).narrow(0, found[i].first, 1).to(kCPU).item();
            result = NonFiniteTensor{tensors[i].first, found[i],
                                     str("'", tensors[i].first, "' holds ", found[i].count, " non-finite value",
                                         found[i].count == 1 ? "" : "s", " of ", t.numel(), " (the first, at index ",
                                         found[i].first, ", is ", value, ")"),
                                     0};
        }
        result->tensors_with_nonfinite++;
    }
    return result;
}

}  // namespace strata
