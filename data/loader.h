// The data loader: shuffles a dataset, augments its samples and stacks them into batches, on worker threads that
// prepare the next batches while the model trains on the current one.
//
//   auto ds = open_dataset("voc", "train", {{"data_root", "data/VOC2012"}});
//   Loader loader(ds, train_transforms(473, 473), {.batch_size = 16, .seed = 42, .workers = 1});
//   for (int it = 0; it < iterations; ++it) {
//       Batch b = loader.next();   // b.images (16, 3, 473, 473) F32, b.labels (16, 473, 473) I32
//       ...
//   }
//
// Batches form one endless sequence, step 0, 1, 2, ..., running through epoch after epoch. Batch `step` is a pure
// function of (seed, step): its epoch is step / batches_per_epoch(), the epoch's sample order is a shuffle seeded
// by (seed, epoch), and each sample's augmentation draws from a Generator seeded by (seed, epoch, index). So the
// output does not depend on the number of workers or on their timing, and a resumed run that starts the loader at
// the step where it stopped (LoaderConfig::start_step) sees exactly the batches the uninterrupted run would have.
//
// Data parallel (LoaderConfig::shard/shards): every rank computes the same global batch order and takes its own
// consecutive batch_size / shards samples of each batch, so the ranks' batches together are exactly the batch one
// process would load, whatever the number of ranks; a step is a global step (checkpoints resume on any world size).
//
// Workers: each claims the next step not yet claimed (at most `prefetch` steps ahead of the consumer), builds the
// whole batch, and files it under its step; next() waits for its step. An error while loading a sample (a bad
// file) is kept with its batch and thrown by the next() that reaches it. The destructor stops and joins the
// workers. The workers do not use parallel_for, so they take one core each and leave the others' OpenMP pool
// (the model) alone.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "framework/tensor.h"

namespace strata {

struct Batch {
    Tensor images;                  // (N, 3, H, W) F32, normalised
    Tensor labels;                  // (N, H, W) I32: class indices and 255 (ignore)
    std::vector<int64_t> indices;   // the dataset index of each sample, in batch order
    int64_t step = 0;               // the batch's place in the loader's sequence
    int64_t epoch = 0;
};

struct LoaderConfig {
    int batch_size = 16;
    uint64_t seed = 0;
    bool shuffle = true;       // false: dataset order (evaluation)
    bool drop_last = true;     // drop an epoch's last, smaller batch
    int workers = 1;           // threads preparing batches; 0 prepares each batch inside next()
    int prefetch = 2;          // batches being prepared or waiting at most (at least `workers`)
    int64_t start_step = 0;    // the step of the first batch next() returns (resuming a run)
    // Data parallel: batch_size is the global batch, and this loader hands out part `shard` of `shards` equal,
    // consecutive parts of each one (the same shuffle and augmentation on every rank, each rank its own images).
    int shard = 0, shards = 1;
};

class Loader {
public:
    Loader(std::shared_ptr<const Dataset> dataset, TransformConfig transforms, LoaderConfig config);
    Loader(std::shared_ptr<const Dataset> dataset, TransformConfig transforms, int batch_size, uint64_t seed,
           int workers = 1);
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    // The next batch in the sequence; blocks until a worker has it ready.
    Batch next();
    // The step of the batch the next call to next() returns (save it in checkpoints; resume with start_step).
    int64_t step() const;
    int64_t batches_per_epoch() const { return batches_per_epoch_; }
    const Dataset& dataset() const { return *dataset_; }

    // What the workers compute, callable from any thread: the sample order of `epoch` and batch `step`.
    std::vector<int64_t> epoch_order(int64_t epoch) const;
    Batch make_batch(int64_t step) const;

private:
    void worker_loop();

    std::shared_ptr<const Dataset> dataset_;
    TransformConfig transforms_;
    LoaderConfig config_;
    int64_t batches_per_epoch_ = 0;

    // Shared with the workers, guarded by mutex_.
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    int64_t next_to_return_ = 0;  // the step next() hands out next
    int64_t next_to_claim_ = 0;   // the first step no worker has taken yet
    bool stopping_ = false;
    struct Ready {
        Batch batch;
        std::exception_ptr error;
    };
    std::map<int64_t, Ready> ready_;
    std::vector<std::thread> workers_;
};

}  // namespace strata
