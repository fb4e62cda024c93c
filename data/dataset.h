// Datasets: an indexed collection of (image, label) samples, and the formats they come in.
//
//   DatasetConfig config;
//   config.format = "voc";
//   config.root = "data/VOC2012";
//   config.split = "train";
//   std::shared_ptr<Dataset> ds = open_dataset(config);
//   Sample s = ds->get(0);   // s.image: RGB; s.label: class indices 0..C-1 and 255 (ignore)
//
// Formats (one .cpp each):
//   list            semseg's list file: "image_path label_path" per line, relative to the root
//                   (list_dataset.cpp); one path per line for an image-only (test) list
//   voc             PASCAL VOC 2012: ImageSets/Segmentation/<split>.txt + JPEGImages + SegmentationClass (palette
//                   PNGs, read by index) or SegmentationClassAug (grayscale) (voc.cpp)
//   cityscapes      leftImg8bit/<split>/<city>/*_leftImg8bit.png + gtFine labels: *_gtFine_labelTrainIds.png when
//                   present, else *_gtFine_labelIds.png mapped to the 19 trainIds (cityscapes.cpp)
//   ade20k          ADEChallengeData2016: images/<split>/*.jpg + annotations/<split>/*.png, labels minus one with
//                   0 -> 255 (ade20k.cpp)
//   contextscenes   the built-in dataset generated in memory (data/contextscenes.h); `make data` writes it to disk
//                   in VOC layout instead, which the voc format reads
//
// Every loader checks what users get wrong and names the file in its message: missing files and folders (at open
// time, so a training run does not die an hour in), empty or malformed lists (with the line number), image and label
// sizes that differ, and label values outside 0..C-1 that are not 255, with the likely fix ("did you mean
// trainIds?", "ADE20K labels need the minus-one shift"). Decoding checks happen in get(), which the loader's worker
// threads call; their errors reach the training loop through Loader::next().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/contextscenes.h"
#include "data/image.h"

namespace strata {

struct Sample {
    std::string name;  // an id for messages and output files, e.g. "2007_000032"
    Image image;       // RGB
    LabelMap label;    // class indices 0..C-1 and 255; empty (0x0) when the dataset has no labels (a test split)
};

// The classes of a dataset: names and display colours, index = label value.
struct ClassInfo {
    std::vector<std::string> names;
    std::vector<Rgb> colors;  // one per class (palette PNGs, overlays)
    int count() const { return int(names.size()); }
};

// The class tables of the standard datasets (the names in semseg's data/<ds>/<ds>_names.txt order).
ClassInfo voc_classes();         // 21: background, aeroplane, ..., tvmonitor; the VOC colour map
ClassInfo cityscapes_classes();  // 19 trainIds: road, sidewalk, ..., bicycle; the Cityscapes colours
ClassInfo ade20k_classes();      // 150: wall, building, ..., flag (after the minus-one shift)
ClassInfo context_scenes_classes();
// Class names from a file, one per line (blank lines skipped), with colours from an optional file of "R G B"
// lines; without one, or for classes past its end, the VOC colour map.
ClassInfo read_class_info(const std::string& names_file, const std::string& colors_file = "");

class Dataset {
public:
    virtual ~Dataset() = default;
    virtual int64_t size() const = 0;
    // Loads, decodes and checks sample `index`. Safe to call from several threads at once.
    virtual Sample get(int64_t index) const = 0;
    virtual std::string name(int64_t index) const = 0;  // the sample's id without loading it
    virtual bool has_labels() const = 0;
    virtual std::string description() const = 0;        // e.g. "voc 'train' in /data/VOC2012 (1464 images)"
    const ClassInfo& classes() const { return classes_; }
    int num_classes() const { return classes_.count(); }

protected:
    ClassInfo classes_;
};

// How a file's raw label values become class indices.
enum class LabelMapping {
    kNone,             // the file holds class indices already (0..C-1, 255)
    kCityscapesIds,    // Cityscapes labelIds 0..33 -> the 19 trainIds through the official table, others -> 255
    kAdeReduceZero,    // ADE20K 0..150: 0 -> 255, v -> v - 1
};

// One sample on disk. `label` is empty for an image-only split.
struct FileEntry {
    std::string name;
    std::string image;
    std::string label;
    LabelMapping mapping = LabelMapping::kNone;
};

// A dataset of files, which every on-disk format builds. The constructor checks that the list is not empty and that
// every file exists (naming the first missing one and how many are missing).
class FileDataset : public Dataset {
public:
    // max_image_pixels: the largest width x height an image or label may claim (load_rgb, load_label).
    FileDataset(std::string description, std::vector<FileEntry> entries, ClassInfo classes,
                int64_t max_image_pixels = kDefaultMaxImagePixels);
    int64_t size() const override { return int64_t(entries_.size()); }
    Sample get(int64_t index) const override;
    std::string name(int64_t index) const override;
    bool has_labels() const override { return has_labels_; }
    std::string description() const override { return description_; }
    const FileEntry& entry(int64_t index) const;

private:
    std::string description_;
    std::vector<FileEntry> entries_;
    bool has_labels_ = true;
    int64_t max_image_pixels_ = kDefaultMaxImagePixels;
};

// Applies `mapping` to a label read from `path` and checks that every value is a class (0..num_classes-1) or 255.
// The errors name the file and suggest the fix. Used by FileDataset::get; public for tools and tests.
void map_and_check_label(LabelMap& label, LabelMapping mapping, int num_classes, const std::string& path);
// The two mappings on their own (cityscapes.cpp, ade20k.cpp); values the raw format cannot hold are errors naming
// `path`.
void cityscapes_ids_to_train_ids(LabelMap& label, const std::string& path);
void ade20k_reduce_zero(LabelMap& label, const std::string& path);
int32_t cityscapes_train_id(int32_t label_id);  // the official table: 7 -> 0 (road), ..., 33 -> 18; others 255

// ---- the formats ----
// Each takes max_image_pixels, the largest width x height an image or label file may claim before it is refused
// (the config key of that name; see load_rgb).
// semseg's list file. Each line is "image label" (or "image" alone for an image-only list; all lines must have the
// same number of fields). Paths are relative to `data_root`; an absolute path that exists is used as is, and a
// leading "/" on a path that only exists under the root (DeepLab-style lists) is taken as relative.
std::shared_ptr<Dataset> open_list_dataset(const std::string& list_file, const std::string& data_root,
                                           ClassInfo classes, LabelMapping mapping = LabelMapping::kNone,
                                           int64_t max_image_pixels = kDefaultMaxImagePixels);
// PASCAL VOC 2012. `root` is the VOC2012 folder. The ids come from ImageSets/Segmentation/<split>.txt (or
// ImageSets/SegmentationAug/<split>.txt, e.g. train_aug); images are JPEGImages/<id>.jpg (or .png); labels are
// <label_dir>/<id>.png, label_dir = "SegmentationClass" or "SegmentationClassAug". The split "test" has no labels.
// Classes: the 21 VOC classes, unless root holds class_names.txt (labelme's and ContextScenes' convention; colours
// from class_colors.txt when present).
std::shared_ptr<Dataset> open_voc(const std::string& root, const std::string& split,
                                  const std::string& label_dir = "SegmentationClass",
                                  int64_t max_image_pixels = kDefaultMaxImagePixels);
// Cityscapes. `root` holds leftImg8bit/ and gtFine/; split = train, val or test (test: images only).
std::shared_ptr<Dataset> open_cityscapes(const std::string& root, const std::string& split,
                                         int64_t max_image_pixels = kDefaultMaxImagePixels);
// ADE20K SceneParsing. `root` is ADEChallengeData2016; split = training or validation (train / val accepted).
std::shared_ptr<Dataset> open_ade20k(const std::string& root, const std::string& split,
                                     int64_t max_image_pixels = kDefaultMaxImagePixels);
// ContextScenes generated in memory (no files): `split` is "train" or "val".
std::shared_ptr<Dataset> open_context_scenes(const ContextScenesConfig& config, const std::string& split);

// ---- one entry point for programs ----
struct DatasetConfig {
    std::string format = "voc";       // list | voc | cityscapes | ade20k | contextscenes
    std::string root;                 // the data root (unused by contextscenes)
    std::string split = "train";
    std::string list;                 // list: the list file, relative to root unless absolute
    std::string label_dir = "SegmentationClass";  // voc: or SegmentationClassAug
    std::string names_file;           // list: class names, one per line, relative to root unless absolute
    int num_classes = 0;              // list without names_file: the class count
    std::string label_mapping = "none";  // list: none | cityscapes_ids | ade20k_reduce_zero
    ContextScenesConfig scenes;       // contextscenes
    int64_t max_image_pixels = kDefaultMaxImagePixels;  // file formats: the largest width x height a file may claim
};
std::shared_ptr<Dataset> open_dataset(const DatasetConfig& config);

}  // namespace strata
