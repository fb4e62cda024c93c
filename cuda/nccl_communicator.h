// The "nccl" communicator backend (cuda/nccl_communicator.cu): collectives between GPUs over NCCL, one rank per GPU.
// This header carries no NCCL type, so plain C++ (tests) can use it.
#pragma once

#include <memory>
#include <vector>

#include "framework/communicator.h"

namespace strata {

// A new NCCL unique id (ncclGetUniqueId), as the 16 int64 values a broadcast carries.
std::vector<int64_t> nccl_unique_id();

// Rank `rank` of `world` on CUDA device `device` (made the calling thread's current device), joining the clique
// named by `id` (every rank passes the same id). The registered factory "nccl" does this bootstrap over a base
// communicator (MPI): rank 0 makes the id, base broadcasts it, each rank takes device local_rank % GPU count.
// fail_all_ranks goes through `base` when there is one.
std::shared_ptr<Communicator> make_nccl_communicator(const std::vector<int64_t>& id, int rank, int world, int device,
                                                     Communicator::Options options,
                                                     std::shared_ptr<Communicator> base = nullptr);

}  // namespace strata
