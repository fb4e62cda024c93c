// The threaded, deterministic batch loader (see loader.h for the contract).
#include "data/loader.h"

#include <cstring>

#include "framework/check.h"
#include "framework/random.h"

namespace strata {

namespace {

// Separate random streams for the two uses of the seed in each epoch, so that shuffling and augmentation never
// share numbers: stream 2e shuffles epoch e, stream 2e+1 seeds the samples of epoch e.
uint64_t shuffle_key(uint64_t seed, int64_t epoch) { return random_u64(seed, 2 * uint64_t(epoch)); }
uint64_t sample_key(uint64_t seed, int64_t epoch, int64_t index) {
    return random_u64(random_u64(seed, 2 * uint64_t(epoch) + 1), uint64_t(index));
}

}  // namespace

Loader::Loader(std::shared_ptr<const Dataset> dataset, TransformConfig transforms, LoaderConfig config)
    : dataset_(std::move(dataset)), transforms_(transforms), config_(config) {
    STRATA_CHECK(dataset_, "loader: no dataset");
    STRATA_CHECK(config_.batch_size > 0, "loader: batch_size must be positive, got ", config_.batch_size);
    STRATA_CHECK(config_.workers >= 0, "loader: workers must be 0 or more, got ", config_.workers);
    STRATA_CHECK(config_.shards >= 1 && config_.shard >= 0 && config_.shard < config_.shards, "loader: shard ",
                 config_.shard, " of ", config_.shards, " does not exist (shards are 0..shards-1)");
    STRATA_CHECK(config_.shards == 1 || (config_.drop_last && config_.batch_size % config_.shards == 0),
                 "loader: the global batch_size ", config_.batch_size, " must split evenly over ", config_.shards,
                 " shards (with drop_last)");
    STRATA_CHECK(config_.start_step >= 0, "loader: start_step must be 0 or more, got ", config_.start_step);
    int64_t n = dataset_->size(), b = config_.batch_size;
    batches_per_epoch_ = config_.drop_last ? n / b : (n + b - 1) / b;
    STRATA_CHECK(batches_per_epoch_ > 0, "loader: ", dataset_->description(), " has ", n, " samples, fewer than one "
                 "batch of ", b, " (drop_last is on): lower batch_size");
    next_to_return_ = next_to_claim_ = config_.start_step;
    int threads = config_.workers;
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, TransformConfig transforms, int batch_size, uint64_t seed,
               int workers)
    : Loader(std::move(dataset), transforms,
             LoaderConfig{.batch_size = batch_size, .seed = seed, .workers = workers}) {}

Loader::~Loader() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    for (std::thread& t : workers_) t.join();
}

int64_t Loader::step() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return next_to_return_;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
    int64_t n = dataset_->size();
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    if (!config_.shuffle) return order;
    // Fisher-Yates: for i from the end, swap element i with a uniformly chosen element of [0, i].
    Generator gen(shuffle_key(config_.seed, epoch));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(gen.randint(i + 1))]);
    return order;
}

Batch Loader::make_batch(int64_t step) const {
    Batch batch;
    batch.step = step;
    batch.epoch = step / batches_per_epoch_;
    int64_t first = (step % batches_per_epoch_) * config_.batch_size;
    std::vector<int64_t> order = epoch_order(batch.epoch);
    int64_t last = std::min(first + config_.batch_size, int64_t(order.size()));
    if (config_.shards > 1) {  // this shard's consecutive part of the global batch (full batches: drop_last)
        const int64_t per_shard = config_.batch_size / config_.shards;
        first += config_.shard * per_shard;
        last = first + per_shard;
    }
    batch.indices.assign(order.begin() + first, order.begin() + last);

    std::vector<TransformedSample> samples;
    std::vector<std::string> names;
    for (int64_t index : batch.indices) {
        Sample sample = dataset_->get(index);
        Generator gen(sample_key(config_.seed, batch.epoch, index));
        samples.push_back(transform_sample(sample, transforms_, gen));
        names.push_back(sample.name);
    }
    // Collate: stack into (N, 3, H, W) and (N, H, W); every sample must have the batch's size.
    int64_t n = int64_t(samples.size()), h = samples[0].h, w = samples[0].w;
    for (size_t i = 1; i < samples.size(); ++i)
        STRATA_CHECK(samples[i].h == h && samples[i].w == w, "loader: the samples of a batch must have one size, but '",
                     names[0], "' is ", w, "x", h, " and '", names[i], "' is ", samples[i].w, "x", samples[i].h,
                     " after the transforms; set a crop size (crop_h, crop_w) or use batch_size 1");
    batch.images = empty({n, 3, h, w}, DType::F32);
    batch.labels = empty({n, h, w}, DType::I32);
    for (int64_t i = 0; i < n; ++i) {
        const TransformedSample& s = samples[size_t(i)];
        std::memcpy(batch.images.f32() + i * 3 * h * w, s.image.data(), s.image.size() * sizeof(float));
        std::memcpy(batch.labels.i32() + i * h * w, s.label.data(), s.label.size() * sizeof(int32_t));
    }
    return batch;
}

void Loader::worker_loop() {
    int64_t ahead = std::max(config_.prefetch, config_.workers);
    while (true) {
        int64_t step = 0;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            changed_.wait(lock, [&] { return stopping_ || next_to_claim_ < next_to_return_ + ahead; });
            if (stopping_) return;
            step = next_to_claim_++;
        }
        Ready result;
        try {
            result.batch = make_batch(step);
        } catch (...) {
            result.error = std::current_exception();
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ready_[step] = std::move(result);
        }
        changed_.notify_all();
    }
}

Batch Loader::next() {
    if (workers_.empty()) {
        int64_t step = 0;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            step = next_to_return_++;
        }
        return make_batch(step);
    }
    Ready result;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        int64_t step = next_to_return_;
        changed_.wait(lock, [&] { return ready_.count(step) > 0; });
        result = std::move(ready_[step]);
        ready_.erase(step);
        ++next_to_return_;
    }
    changed_.notify_all();  // a worker may claim the next step now
    if (result.error) std::rethrow_exception(result.error);
    return std::move(result.batch);
}

}  // namespace strata
