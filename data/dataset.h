// Datasets: an indexed collection of (image, label) samples, and the registry that opens one by its format's name.
//
//   std::shared_ptr<Dataset> ds = open_dataset("voc", "train", {{"data_root", "data/VOC2012"}});
//   Sample s = ds->get(0);   // s.image: RGB; s.label: class indices 0..C-1 and 255 (ignore)
//
// Each format lives in its own .cpp, registers itself there by name (REGISTER_DATASET, as layers do with
// REGISTER_LAYER) and reads its own keys from the config it is handed; the code here names none of them
// (data/formats.h lists the repository's formats).
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

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "framework/dispatch.h"

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

// How a file's raw label values become class indices, in place; values the raw format cannot hold are errors naming
// `path`. nullptr: the file holds class indices already (0..C-1, 255). The formats bring their own (data/formats.h).
using LabelMapping = void (*)(LabelMap& label, const std::string& path);

// One sample on disk. `label` is empty for an image-only split.
struct FileEntry {
    std::string name;
    std::string image;
    std::string label;
    LabelMapping mapping = nullptr;
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

// ---- the format registry ----
// What a format is handed: the split to open and the config to read its keys from. That is the run config
// (models/pspnet/config.cpp lists every key) or any JSON object; a key it does not hold takes the format's default.
struct DatasetOptions {
    std::string format;
    std::string split;
    nlohmann::json config = nlohmann::json::object();

    // A key's value, or `fallback` when the config does not hold it; a value of another type is an error naming it.
    std::string get_string(const std::string& key, const std::string& fallback) const;
    int64_t get_int(const std::string& key, int64_t fallback) const;
    // data_root, which every format of files needs: an error naming the key when it is empty.
    std::string root() const;
    // max_image_pixels: the largest width x height an image or label file may claim (see load_rgb).
    int64_t max_image_pixels() const { return get_int("max_image_pixels", kDefaultMaxImagePixels); }
};
using DatasetOpener = std::shared_ptr<Dataset> (*)(const DatasetOptions& options);

void register_dataset(const std::string& format, DatasetOpener opener);  // a duplicate name is an error
// Opens `split` of the dataset in `format`. An unknown format fails with the list of the known ones.
std::shared_ptr<Dataset> open_dataset(const std::string& format, const std::string& split,
                                      const nlohmann::json& config = nlohmann::json::object());
std::shared_ptr<Dataset> open_dataset(const DatasetOptions& options);  // the same, from options built by hand
std::vector<std::string> dataset_formats();  // sorted

struct DatasetRegistrar {
    DatasetRegistrar(const char* format, DatasetOpener opener) { register_dataset(format, opener); }
};

}  // namespace strata

// In the format's own .cpp: REGISTER_DATASET("voc", open_voc_from_config). The library and every program link all
// object files (not a static archive), so the registrar always runs.
#define REGISTER_DATASET(format, opener) \
    static ::strata::DatasetRegistrar STRATA_CONCAT(dataset_registrar_, __LINE__)(format, opener)
