// Element types. float32 carries data, activations and gradients; int32/int64 carry labels and counters
// (BatchNorm's num_batches_tracked is int64 to match PyTorch checkpoints). Nothing else: no templates over dtypes,
// each kernel states the one type it works on.
#pragma once

#include <cstddef>
#include <string>

namespace strata {

enum class DType { F32, I32, I64 };

inline size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::I32: return 4;
        case DType::I64: return 8;
    }
    return 0;
}

// The names safetensors uses ("F32", "I32", "I64").
inline const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::I32: return "I32";
        case DType::I64: return "I64";
    }
    return "?";
}

}  // namespace strata
