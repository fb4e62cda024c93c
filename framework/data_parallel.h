// Data-parallel training over a Communicator: what a trainer calls so that every rank holds the same model and
// applies the same update. docs/distributed.md says where each call goes in a training step.
#pragma once

#include <cstdint>
#include <vector>

#include "framework/communicator.h"
#include "framework/module.h"

namespace strata {

// Fails on every rank unless every rank's model has the same parameter and buffer names, in the same order, with
// the same shapes and dtypes. The error names the first difference and the ranks, e.g. "rank 1's model differs
// from rank 0's: rank 0 has layer1.0.conv1.weight [64, 64, 3, 3] F32, rank 1 has layer1.0.conv1.weight
// [64, 32, 3, 3] F32" (a rank whose model matches rank 0's names the first rank that differs).
void check_same_model(Communicator& comm, const Module& model);

// Copies rank `root`'s parameters and buffers into every rank's model (in place), so that all ranks start equal.
void broadcast_state(Communicator& comm, Module& model, int root = 0);

// Replaces each parameter's gradient by its mean over the ranks: summed in buckets of at most bucket_bytes (one
// all_reduce each, in parameter order on every rank), then divided by the world size. A parameter without a
// gradient on some ranks counts as zeros there; it gets a gradient on every rank if any rank had one, and stays
// without one if none had.
void average_gradients(Communicator& comm, const std::vector<Tensor>& parameters,
                       int64_t bucket_bytes = int64_t(25) << 20);

}  // namespace strata
