// ContextScenes: determinism (a checked-in checksum), the layout invariants that make the object class a matter of
// global context only, and the VOC-layout copy on disk read back by the real VOC loader.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>

#include "data/contextscenes.h"
#include "data/formats.h"
#include "framework/check.h"
#include "tests/data/data_test_util.h"

using namespace strata;
using strata::testing::TempDir;

namespace {

// FNV-1a over the image bytes and the label values.
uint64_t checksum(const ContextScene& s, uint64_t h = 0xCBF29CE484222325ULL) {
    for (uint8_t b : s.image.data) h = (h ^ b) * 0x100000001B3ULL;
    for (int32_t v : s.label.data) h = (h ^ uint64_t(uint32_t(v))) * 0x100000001B3ULL;
    return h;
}

}  // namespace

TEST_CASE("contextscenes: the same seed gives the same bytes, on every machine") {
    ContextScenesConfig config{.size = 97, .min_gap = 24};
    ContextScene a = generate_context_scene(config, "train", 5), b = generate_context_scene(config, "train", 5);
    CHECK(a.image.data == b.image.data);
    CHECK(a.label.data == b.label.data);
    CHECK(generate_context_scene(config, "val", 5).image.data != a.image.data);
    ContextScenesConfig other = config;
    other.seed = 1;
    CHECK(generate_context_scene(other, "train", 5).image.data != a.image.data);

    // The generator uses integers only, so this checksum holds on any compiler and CPU. If the generator changes on
    // purpose, update it together with kGeneratorVersion in data/contextscenes.cpp.
    uint64_t h = 0xCBF29CE484222325ULL;
    for (int64_t i = 0; i < 3; ++i) h = checksum(generate_context_scene(config, "train", i), h);
    CHECK(h == 0x9FBF29548652A990ULL);
}

TEST_CASE("contextscenes: the object class is fixed by the scene band, which lies beyond the gap") {
    ContextScenesConfig config{.size = 97, .min_gap = 24};
    int counts[3] = {0, 0, 0};
    for (int64_t i = 0; i < 150; ++i) {
        ContextScene s = generate_context_scene(config, i % 2 ? "val" : "train", i);
        REQUIRE(s.image.h == 97);
        REQUIRE(s.label.w == 97);
        REQUIRE(s.band_class >= kSceneSea);
        REQUIRE(s.band_class <= kSceneForest);
        CHECK(s.object_class == s.band_class + 4);  // sea -> boat, city -> car, forest -> cow
        ++counts[s.band_class - kSceneSea];
        CHECK(s.band_end - s.sky_end >= 14);
        CHECK(s.band_end <= 36);
        CHECK(!s.objects.empty());
        CHECK(s.objects.size() <= 3);
        int64_t object_pixels = 0;
        int first_object_row = 97;
        for (int y = 0; y < 97; ++y)
            for (int x = 0; x < 97; ++x) {
                int32_t l = s.label.at(y, x);
                if (y < s.sky_end) {
                    REQUIRE(l == kSceneSky);
                } else if (y < s.band_end) {
                    REQUIRE(l == s.band_class);  // one scene band, full width
                } else {
                    REQUIRE((l == kSceneSand || l == s.object_class));
                }
                if (l == s.object_class) {
                    ++object_pixels;
                    first_object_row = std::min(first_object_row, y);
                }
            }
        // no object pixel within min_gap rows of the band
        CHECK(first_object_row >= s.band_end + config.min_gap);
        for (const SceneBox& box : s.objects) {
            CHECK(box.x1 - box.x0 >= 24);  // at least 3 feature cells wide at output stride 8
            CHECK(box.y0 >= s.band_end + config.min_gap);
            CHECK(box.y1 <= 97);
        }
        CHECK(object_pixels >= 300);
    }
    for (int c : counts) CHECK(c >= 30);  // the three scenes are about equally common

    ContextScenesConfig tiny = config;
    tiny.size = 65;
    CHECK_THROWS_WITH_AS(generate_context_scene(tiny, "train", 0), doctest::Contains("size 65 is too small"), Error);
    CHECK_THROWS_WITH_AS(generate_context_scene(config, "test", 0), doctest::Contains("split must be 'train' or 'val'"),
                         Error);
}

TEST_CASE("contextscenes: the in-memory dataset, with its settings read from the config's keys") {
    auto ds = open_dataset("contextscenes", "val",
                           {{"seed", 2}, {"scene_size", 97}, {"scene_val", 7}, {"scene_min_gap", 24}});
    ContextScenesConfig config{.seed = 2, .size = 97, .val_count = 7, .min_gap = 24};
    CHECK(ds->size() == 7);
    CHECK(ds->num_classes() == 8);
    CHECK(ds->classes().names[5] == "boat");
    CHECK(ds->name(3) == "val_000003");
    CHECK(ds->get(3).label.data == generate_context_scene(config, "val", 3).label.data);
    CHECK(ds->get(3).image.h == 97);
    // keys the config does not hold keep the generator's defaults, which the run config's keys default to
    ContextScenesConfig read = context_scenes_config({{"scene_min_gap", 30}}), defaults;
    CHECK(read.min_gap == 30);
    CHECK(read.size == defaults.size);
    CHECK(read.train_count == defaults.train_count);
}

TEST_CASE("contextscenes: the VOC-layout copy is read back by the VOC loader, and rewritten only when needed") {
    TempDir dir("contextscenes");
    std::string out = (dir.path / "scenes").string();
    ContextScenesConfig config;
    config.seed = 3;
    config.train_count = 6;
    config.val_count = 3;

    ContextScenesWriteResult first = write_context_scenes(out, config, 2);
    CHECK_FALSE(first.skipped);
    CHECK(first.images == 9);
    CHECK(context_scenes_complete(out, config));
    CHECK_FALSE(std::filesystem::exists(out + ".partial"));

    auto train = open_voc(out, "train");
    auto val = open_voc(out, "val");
    REQUIRE(train->size() == 6);
    REQUIRE(val->size() == 3);
    CHECK(train->classes().names == context_scenes_class_names());
    CHECK(train->classes().colors == context_scenes_colors());
    for (int64_t i = 0; i < 6; ++i) {
        Sample s = train->get(i);
        ContextScene g = generate_context_scene(config, "train", i);
        CHECK(s.name == context_scene_name("train", i));
        CHECK(s.image.data == g.image.data);  // PNG: lossless
        CHECK(s.label.data == g.label.data);  // palette indices
    }
    CHECK(val->get(2).label.data == generate_context_scene(config, "val", 2).label.data);

    // complete and identical: nothing to do
    CHECK(write_context_scenes(out, config, 2).skipped);
    // other settings: rewritten
    ContextScenesConfig more = config;
    more.val_count = 4;
    CHECK_FALSE(context_scenes_complete(out, more));
    CHECK(write_context_scenes(out, more, 2).images == 10);
    // a file lost since, or a partial folder left by an interrupted run: detected and redone
    std::filesystem::remove(out + "/SegmentationClass/train_000002.png");
    CHECK_FALSE(context_scenes_complete(out, more));
    std::filesystem::create_directories(out + ".partial/JPEGImages");
    CHECK_FALSE(write_context_scenes(out, more, 1).skipped);
    CHECK(context_scenes_complete(out, more));
    CHECK_FALSE(std::filesystem::exists(out + ".partial"));

    // a folder that is not ours is never replaced
    std::string foreign = dir.file("foreign/keep.txt");
    strata::testing::write_text_file(foreign, "user data");
    CHECK_THROWS_WITH_AS(write_context_scenes((dir.path / "foreign").string(), config, 1),
                         doctest::Contains("exists and was not written by make_contextscenes"), Error);
    CHECK(std::filesystem::exists(foreign));
}
