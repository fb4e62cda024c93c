// The threaded loader: batch shapes and contents, epochs and shuffling, drop_last, determinism whatever the number
// of workers, resuming at a step, errors from workers, and shutdown.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "data/contextscenes.h"
#include "data/loader.h"
#include "framework/check.h"

using namespace strata;

namespace {

// Sample i is a 6x8 image of the constant colour (i, 2i, 3i) with the constant label i % 5; an index listed in
// `broken` throws, and `odd_size` makes sample 3 one row taller.
class ToyDataset : public Dataset {
public:
    explicit ToyDataset(int64_t n, int64_t broken = -1, bool odd_size = false)
        : n_(n), broken_(broken), odd_size_(odd_size) {
        for (int i = 0; i < 5; ++i) {
            classes_.names.push_back("c" + std::to_string(i));
            classes_.colors.push_back(voc_color(i));
        }
    }
    int64_t size() const override { return n_; }
    Sample get(int64_t i) const override {
        STRATA_CHECK(i != broken_, "toy: sample ", i, " is broken");
        int h = odd_size_ && i == 3 ? 7 : 6;
        Sample s{name(i), Image(h, 8, 3), LabelMap(h, 8, int32_t(i % 5))};
        for (int p = 0; p < h * 8; ++p)
            for (int ch = 0; ch < 3; ++ch) s.image.data[size_t(3 * p + ch)] = uint8_t((ch + 1) * i);
        return s;
    }
    std::string name(int64_t i) const override { return "toy" + std::to_string(i); }
    bool has_labels() const override { return true; }
    std::string description() const override { return "toy"; }

private:
    int64_t n_, broken_;
    bool odd_size_;
};

// The sample index a batch row came from, read back from its (unnormalised) red channel.
int64_t index_of(const Batch& b, int64_t row) {
    int64_t plane = b.images.size(2) * b.images.size(3);
    float red = b.images.f32()[row * 3 * plane] * 255.0f * kImageNetStd[0] + 255.0f * kImageNetMean[0];
    return int64_t(std::lround(red));
}

bool same_batch(const Batch& a, const Batch& b) {
    return a.indices == b.indices && a.images.to_vector() == b.images.to_vector() &&
           a.labels.to_vector_i64() == b.labels.to_vector_i64();
}

}  // namespace

TEST_CASE("loader: batches are stacked tensors, each epoch visits every sample once") {
    auto ds = std::make_shared<ToyDataset>(10);
    Loader loader(ds, eval_transforms(), LoaderConfig{.batch_size = 4, .seed = 5, .drop_last = false, .workers = 2});
    CHECK(loader.batches_per_epoch() == 3);
    for (int epoch = 0; epoch < 2; ++epoch) {
        std::multiset<int64_t> seen;
        for (int b = 0; b < 3; ++b) {
            CHECK(loader.step() == epoch * 3 + b);
            Batch batch = loader.next();
            int64_t n = b < 2 ? 4 : 2;  // 10 = 4 + 4 + 2
            CHECK(batch.images.shape() == Shape{n, 3, 6, 8});
            CHECK(batch.labels.shape() == Shape{n, 6, 8});
            CHECK(batch.images.dtype() == DType::F32);
            CHECK(batch.labels.dtype() == DType::I32);
            CHECK(batch.epoch == epoch);
            std::vector<int64_t> labels = batch.labels.to_vector_i64();
            for (int64_t r = 0; r < n; ++r) {
                int64_t index = batch.indices[size_t(r)];
                CHECK(index_of(batch, r) == index);   // the image and the label are the same sample's
                CHECK(labels[size_t(r * 48)] == index % 5);
                seen.insert(index);
            }
        }
        CHECK(seen == std::multiset<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    }
}

TEST_CASE("loader: shuffling is seeded per epoch; drop_last drops the short batch; no shuffle keeps the order") {
    auto ds = std::make_shared<ToyDataset>(10);
    Loader a(ds, eval_transforms(), LoaderConfig{.batch_size = 4, .seed = 1, .workers = 0});
    CHECK(a.batches_per_epoch() == 2);
    CHECK(a.epoch_order(0) != a.epoch_order(1));
    Loader b(ds, eval_transforms(), LoaderConfig{.batch_size = 4, .seed = 2, .workers = 0});
    CHECK(a.epoch_order(0) != b.epoch_order(0));
    Batch first = a.next(), second = a.next(), third = a.next();
    CHECK(third.epoch == 1);
    std::vector<int64_t> order = a.epoch_order(0);
    CHECK(first.indices == std::vector<int64_t>(order.begin(), order.begin() + 4));
    CHECK(second.indices == std::vector<int64_t>(order.begin() + 4, order.begin() + 8));

    Loader ordered(ds, eval_transforms(), LoaderConfig{.batch_size = 3, .shuffle = false, .workers = 1});
    CHECK(ordered.next().indices == std::vector<int64_t>{0, 1, 2});
    CHECK(ordered.next().indices == std::vector<int64_t>{3, 4, 5});
}

TEST_CASE("loader: the output depends on the seed only, not on the workers; start_step resumes exactly") {
    ContextScenesConfig scenes;
    scenes.train_count = 12;
    auto ds = open_context_scenes(scenes, "train");
    TransformConfig t = train_transforms(33, 33);
    std::vector<Batch> reference;
    {
        Loader serial(ds, t, LoaderConfig{.batch_size = 4, .seed = 9, .workers = 0});
        for (int i = 0; i < 5; ++i) reference.push_back(serial.next());
    }
    for (int workers : {1, 3}) {
        Loader threaded(ds, t, LoaderConfig{.batch_size = 4, .seed = 9, .workers = workers, .prefetch = 4});
        for (int i = 0; i < 5; ++i) CHECK(same_batch(threaded.next(), reference[size_t(i)]));
    }
    Loader resumed(ds, t, LoaderConfig{.batch_size = 4, .seed = 9, .workers = 2, .start_step = 3});
    CHECK(resumed.step() == 3);
    CHECK(same_batch(resumed.next(), reference[3]));
    CHECK(same_batch(resumed.next(), reference[4]));
    // the same sample in two epochs is augmented differently (epoch 0 is steps 0-2, epoch 1 starts at step 3)
    int64_t index = reference[3].indices[0];
    for (int step = 0; step < 3; ++step)
        for (size_t r = 0; r < 4; ++r)
            if (reference[size_t(step)].indices[r] == index)
                CHECK(reference[size_t(step)].images.narrow(0, int64_t(r), 1).to_vector() !=
                      reference[3].images.narrow(0, 0, 1).to_vector());
    Loader other_seed(ds, t, 4, 10, 1);
    CHECK_FALSE(same_batch(other_seed.next(), reference[0]));
}

TEST_CASE("loader: a worker's error reaches next(), and the loader shuts down cleanly") {
    auto broken = std::make_shared<ToyDataset>(8, 2);
    Loader loader(broken, eval_transforms(), LoaderConfig{.batch_size = 2, .shuffle = false, .workers = 2});
    CHECK(loader.next().indices == std::vector<int64_t>{0, 1});
    CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains("toy: sample 2 is broken"), Error);
    CHECK(loader.next().indices == std::vector<int64_t>{4, 5});  // the sequence goes on

    auto odd = std::make_shared<ToyDataset>(8, -1, true);
    Loader sizes(odd, eval_transforms(), LoaderConfig{.batch_size = 4, .shuffle = false, .workers = 1});
    CHECK_THROWS_WITH_AS(sizes.next(), doctest::Contains("'toy0' is 8x6 and 'toy3' is 8x7"), Error);

    CHECK_THROWS_WITH_AS(Loader(broken, eval_transforms(), LoaderConfig{.batch_size = 9}),
                         doctest::Contains("fewer than one batch of 9"), Error);
    CHECK_THROWS_WITH_AS(Loader(broken, eval_transforms(), LoaderConfig{.batch_size = 0}),
                         doctest::Contains("batch_size must be positive"), Error);

    // destroyed while its workers are busy prefetching, without a single next()
    for (int i = 0; i < 5; ++i) {
        Loader idle(std::make_shared<ToyDataset>(64), train_transforms(6, 8),
                    LoaderConfig{.batch_size = 8, .workers = 3, .prefetch = 6});
    }
}

TEST_CASE("loader: the shards of a global batch are the one-process batch split in order, for every world size") {
    ContextScenesConfig scenes;
    scenes.train_count = 12;
    auto ds = open_context_scenes(scenes, "train");
    TransformConfig t = train_transforms(33, 33);
    Loader whole(ds, t, LoaderConfig{.batch_size = 4, .seed = 9, .workers = 0});
    std::vector<Batch> reference;
    for (int i = 0; i < 4; ++i) reference.push_back(whole.next());  // 3 per epoch: crosses into epoch 1
    for (int shards : {2, 4}) {
        const int64_t per = 4 / shards;
        for (int shard = 0; shard < shards; ++shard) {
            Loader part(ds, t, LoaderConfig{.batch_size = 4, .seed = 9, .workers = 1, .start_step = 1,
                                            .shard = shard, .shards = shards});
            CHECK(part.batches_per_epoch() == 3);
            for (int step = 1; step < 4; ++step) {
                Batch b = part.next(), &r = reference[size_t(step)];
                CAPTURE(shards);
                CAPTURE(shard);
                CAPTURE(step);
                CHECK(b.step == step);
                CHECK(b.indices == std::vector<int64_t>(r.indices.begin() + shard * per,
                                                        r.indices.begin() + (shard + 1) * per));
                CHECK(b.images.to_vector() == r.images.narrow(0, shard * per, per).to_vector());
                CHECK(b.labels.to_vector_i64() == r.labels.narrow(0, shard * per, per).to_vector_i64());
            }
        }
    }
    CHECK_THROWS_WITH_AS(Loader(ds, t, LoaderConfig{.batch_size = 4, .shard = 0, .shards = 3}),
                         doctest::Contains("global batch_size 4 must split evenly over 3 shards"), Error);
    CHECK_THROWS_WITH_AS(Loader(ds, t, LoaderConfig{.batch_size = 4, .shard = 2, .shards = 2}),
                         doctest::Contains("shard 2 of 2 does not exist"), Error);
}
