// ContextScenes: the built-in dataset, generated from a seed, whose object classes only global context can tell
// apart (PSPNet's "mismatched relationship" case; docs/pspnet.md has the results it gives).
//
//   rows 0 .. sky_end-1         sky            the same for every scene
//   rows sky_end .. band_end-1  scene band     exactly one of sea / city / forest: the scene type
//   rows band_end .. size-1     sand           the same for every scene
//   on the sand: 1-3 objects    boat / car / cow, the class fixed by the scene band (sea -> boat, city -> car,
//                               forest -> cow); shapes and colours drawn from ONE distribution for all three
//
// Every object pixel lies at least `min_gap` rows below the band. A network whose receptive field is smaller than
// that cannot see the band from an object, so it can only guess the object's class (1/3 right); the pyramid pooling
// module's global bins can. Sky, sand and band rows are independent of the scene, so nothing else carries the cue.
//
// Determinism: every image is a pure function of (seed, split, index), computed with the project's SplitMix64
// (framework/random.h) and integer arithmetic only (value noise with fixed-point interpolation, integer ellipse
// tests). Floating point is avoided on purpose: compilers may fuse float multiply-adds differently on different
// machines, and the images must be identical everywhere for a checked-in checksum.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/image.h"

namespace strata {

// The generator's settings. These defaults are the only place the numbers are written: the run config's keys (seed,
// scene_size, scene_min_gap, scene_train, scene_val) default to them (models/pspnet/config.cpp), and
// make_contextscenes reads the keys of configs/contextscenes.json.
struct ContextScenesConfig {
    uint64_t seed = 0;
    int size = 113;              // images are size x size; 8k+1 keeps semseg's align-corners arithmetic exact
    int64_t train_count = 2000;
    int64_t val_count = 400;
    int min_gap = 40;            // rows from the band's last row to the first object row (> the no-PPM RF radius)
};
// The settings a run config names (the keys above; a key it does not hold keeps its default).
ContextScenesConfig context_scenes_config(const nlohmann::json& config);

// Class indices (the label values) and what each looks like.
enum ContextScenesClass : int32_t {
    kSceneSky = 0,
    kSceneSea = 1,
    kSceneCity = 2,
    kSceneForest = 3,
    kSceneSand = 4,
    kSceneBoat = 5,
    kSceneCar = 6,
    kSceneCow = 7,
};
constexpr int kContextScenesClasses = 8;
std::vector<std::string> context_scenes_class_names();  // sky sea city forest sand boat car cow
std::vector<Rgb> context_scenes_colors();

struct SceneBox {
    int x0, y0, x1, y1;  // the object's bounding box, [x0, x1) x [y0, y1)
};

// One generated image with what the generator decided, for tests and for diagnostics.
struct ContextScene {
    Image image;      // size x size RGB
    LabelMap label;   // size x size class indices
    int32_t band_class = kSceneSea;    // kSceneSea, kSceneCity or kSceneForest
    int32_t object_class = kSceneBoat; // band_class + 4
    int sky_end = 0, band_end = 0;     // rows [0, sky_end) sky, [sky_end, band_end) band, the rest sand
    std::vector<SceneBox> objects;
};

// Image `index` of `split` ("train" or "val"; the two are disjoint streams of the same seed).
ContextScene generate_context_scene(const ContextScenesConfig& config, const std::string& split, int64_t index);
// The sample name used on disk and in lists: "train_000042".
std::string context_scene_name(const std::string& split, int64_t index);
ClassInfo context_scenes_classes();  // the names and colours above

// The dataset generated in memory (no files): `split` is "train" or "val". Registered as the format
// "contextscenes", which reads its settings with context_scenes_config.
std::shared_ptr<Dataset> open_context_scenes(const ContextScenesConfig& config, const std::string& split);

// Writes the dataset in PASCAL VOC layout under `out_dir`, so that the VOC loader reads it:
//   JPEGImages/<name>.png            the images (PNG: lossless, so the files equal the generated pixels)
//   SegmentationClass/<name>.png     palette PNGs, indices = classes, the ContextScenes colours as palette
//   ImageSets/Segmentation/{train,val,trainval}.txt
//   class_names.txt, class_colors.txt  one class per line ("R G B" for the colours)
//   contextscenes.json               the settings; written last, its presence means "complete"
// Everything is written into "<out_dir>.partial" and renamed to out_dir at the end, so an interrupted run never
// leaves a folder that looks complete; the next run removes the partial folder and starts again. If out_dir already
// holds a complete copy with the same settings, nothing is done. `threads` <= 0 means one per core. Two runs on the
// same folder at the same time are not supported (they share the partial folder).
struct ContextScenesWriteResult {
    bool skipped = false;   // an identical complete copy was already there
    int64_t images = 0;     // images written
    double seconds = 0.0;
};
ContextScenesWriteResult write_context_scenes(const std::string& out_dir, const ContextScenesConfig& config,
                                              int threads = 0);
// True when out_dir holds a complete copy written with exactly these settings.
bool context_scenes_complete(const std::string& out_dir, const ContextScenesConfig& config);

}  // namespace strata
