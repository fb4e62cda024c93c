// Data-parallel training over a Communicator: what a trainer calls so that every rank holds the same model and
// applies the same update. docs/distributed.md says where each call goes in a training step.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "framework/autograd.h"
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

// Gradient averaging overlapped with the backward, as PyTorch's DistributedDataParallel does it. Made before
// backward() and finished after it:
//
//     GradientBucketer buckets(comm, model.parameters());  // installs the gradient-ready hook
//     loss.backward();                                      // buckets launch as their gradients become final
//     buckets.finish();                                     // waits, divides by the world size, writes .grad
//
// The parameters are grouped into buckets of consecutive parameters in REVERSE order (the last registered first,
// roughly the order in which the backward finishes them), each of at most bucket_bytes (a parameter larger than
// that is a bucket of its own). Each bucket is a host buffer [gradients..., one flag per parameter]. When the
// autograd engine says a parameter's gradient is final (GradReadyHookGuard), it is copied into its bucket; when
// every parameter of a bucket is in, the bucket's all-reduce is started (all_reduce_sum_start) — but bucket k only
// after bucket k-1, so every rank starts the same collectives in the same order whatever the order in which its
// gradients became final. The hook also tests the buckets in flight, since Open MPI advances a non-blocking
// collective only inside MPI calls. finish() puts the parameters the backward did not reach (no gradient on this
// rank) in as zeros, starts the remaining buckets in order, waits for all, and sets each gradient to the sum over
// the ranks divided by the world size. As in average_gradients, a parameter without a gradient on some ranks counts
// as zeros there; it gets a gradient on every rank if any rank had one, and stays without one if none had.
//
// The ranks must run the same graph (the same ops in the same order: the same model and code path), so that the
// bucket launches fall at the same point among the other collectives of the backward (synchronized batch norm's)
// on every rank; a debug run with STRATA_COLLECTIVE_DEBUG=1 checks it. One backward per bucketer: gradients
// accumulated over several backward calls need a bucketer for the last one only (or average_gradients after them).
// With one rank, finish() does nothing and the hook is not installed.
class GradientBucketer {
public:
    GradientBucketer(Communicator& comm, std::vector<Tensor> parameters, int64_t bucket_bytes = int64_t(25) << 20);
    ~GradientBucketer();
    GradientBucketer(const GradientBucketer&) = delete;
    GradientBucketer& operator=(const GradientBucketer&) = delete;

    void finish();

    // What happened, for tests and benchmarks.
    int num_buckets() const { return int(buckets_.size()); }
    // The parameter indices of each bucket (indices into the constructor's list), in launch order.
    std::vector<std::vector<int>> bucket_parameters() const;
    // For each bucket launched so far, how many parameters had become final when it was launched: less than the
    // number of parameters means it was launched during the backward, before the last gradient was final.
    const std::vector<int>& ready_at_launch() const { return ready_at_launch_; }
    int launched_in_backward() const { return launched_in_backward_; }
    double seconds_waiting() const { return seconds_waiting_; }  // in finish(): the communication not hidden

private:
    struct Bucket {
        std::vector<int> parameters;  // indices into parameters_
        std::vector<int64_t> offsets;  // of each parameter's gradient in buffer
        int64_t elements = 0;          // gradient elements; the flags follow
        Tensor buffer;                 // host F32 [elements + parameters.size()]
        int ready = 0;
        CollectiveRequest request;
    };
    void on_ready(int parameter);
    void launch_ready_buckets();

    Communicator& comm_;
    std::vector<Tensor> parameters_;
    std::vector<Bucket> buckets_;
    std::vector<int> bucket_of_, slot_of_;  // per parameter: its bucket and its place in it
    std::vector<bool> ready_;
    std::unordered_map<const TensorImpl*, int> index_;
    std::unique_ptr<GradReadyHookGuard> hook_;
    size_t next_launch_ = 0;
    int num_ready_ = 0;
    std::vector<int> ready_at_launch_;
    int launched_in_backward_ = 0;
    double seconds_waiting_ = 0;
    bool finished_ = false;
};

// Replaces each parameter's gradient by its mean over the ranks, after a backward: a GradientBucketer finished at
// once (buckets of at most bucket_bytes, one all_reduce each, in reverse parameter order on every rank). A
// parameter without a gradient on some ranks counts as zeros there; it gets a gradient on every rank if any rank
// had one, and stays without one if none had.
void average_gradients(Communicator& comm, const std::vector<Tensor>& parameters,
                       int64_t bucket_bytes = int64_t(25) << 20);

}  // namespace strata
