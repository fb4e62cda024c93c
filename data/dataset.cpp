// What every dataset format shares: the file-backed dataset, the label checks and their hints, class files, and
// the registry through which open_dataset() finds a format by its name.
#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "framework/check.h"

namespace strata {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
    size_t begin = s.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos) return "";
    size_t end = s.find_last_not_of(" \t\r\n");
    return s.substr(begin, end - begin + 1);
}

// The hint that goes with a label value outside the class range, from the largest value in the file.
std::string label_range_hint(int32_t max_value, int num_classes) {
    if (max_value >= 1000)
        return "values of 1000 and more look like Cityscapes instanceIds (labelId * 1000 + instance): use the "
               "*_gtFine_labelIds.png files instead";
    if (num_classes == 19 && max_value <= 33)
        return "did you mean trainIds? Values up to 33 are Cityscapes labelIds: use the *_gtFine_labelTrainIds.png "
               "files (cityscapesScripts' createTrainIdLabelImgs.py makes them), or the format 'cityscapes' or "
               "label_mapping=cityscapes_ids, which map labelIds to the 19 trainIds";
    if (num_classes == 150 && max_value == 150)
        return "ADE20K labels need the minus-one shift: the raw annotations hold 0..150 with 0 = 'other objects'; use "
               "the format 'ade20k' or label_mapping=ade20k_reduce_zero (0 -> 255, v -> v - 1)";
    std::string hint = str("labels must be class indices 0..", num_classes - 1, " or 255 (ignore); check the class "
                           "count and that the label files hold indices, not colours");
    if (num_classes == 21)
        hint += " (a VOC label converted from its colours to grayscale holds luma values such as 38 or 75: read the "
                "palette PNG itself, or use SegmentationClassAug)";
    return hint;
}

}  // namespace

// ---- labels ----

void map_and_check_label(LabelMap& label, LabelMapping mapping, int num_classes, const std::string& path) {
    if (mapping) mapping(label, path);
    int64_t bad = 0;
    int32_t first_bad = 0, max_value = 0;
    for (int32_t v : label.data) {
        if (v != kIgnoreLabel && (v < 0 || v >= num_classes)) {
            if (bad == 0) first_bad = v;
            ++bad;
        }
        if (v != kIgnoreLabel) max_value = std::max(max_value, v);
    }
    STRATA_CHECK(bad == 0, "dataset: label ", path, " holds value ", first_bad, " (", bad, " pixels; largest value ",
                 max_value, "), outside the ", num_classes, " classes and not 255: ",
                 label_range_hint(max_value, num_classes));
}

// ---- class files ----

ClassInfo read_class_info(const std::string& names_file, const std::string& colors_file) {
    std::ifstream names_in(names_file);
    STRATA_CHECK(names_in, "class names: cannot open ", names_file);
    ClassInfo info;
    std::string line;
    while (std::getline(names_in, line)) {
        line = trim(line);
        if (!line.empty()) info.names.push_back(line);
    }
    STRATA_CHECK(!info.names.empty(), "class names: ", names_file, " lists no classes (one name per line)");
    STRATA_CHECK(info.names.size() <= 255, "class names: ", names_file, " lists ", info.names.size(),
                 " classes; at most 255 fit (255 is the ignore label)");
    for (size_t i = 0; i < info.names.size(); ++i) info.colors.push_back(voc_color(int(i)));
    if (colors_file.empty()) return info;
    std::ifstream colors_in(colors_file);
    STRATA_CHECK(colors_in, "class colours: cannot open ", colors_file);
    size_t index = 0;
    int line_number = 0;
    while (std::getline(colors_in, line)) {
        ++line_number;
        line = trim(line);
        if (line.empty()) continue;
        std::istringstream fields(line);
        int r = -1, g = -1, b = -1;
        std::string extra;
        fields >> r >> g >> b;
        bool ok = !fields.fail() && !(fields >> extra) && r >= 0 && r <= 255 && g >= 0 && g <= 255 && b >= 0 &&
                  b <= 255;
        STRATA_CHECK(ok, "class colours: ", colors_file, ":", line_number, ": expected \"R G B\" with values 0..255, "
                     "got \"", line, "\"");
        if (index < info.colors.size()) info.colors[index] = Rgb{uint8_t(r), uint8_t(g), uint8_t(b)};
        ++index;
    }
    return info;
}

// ---- FileDataset ----

FileDataset::FileDataset(std::string description, std::vector<FileEntry> entries, ClassInfo classes,
                         int64_t max_image_pixels)
    : description_(std::move(description)), entries_(std::move(entries)), max_image_pixels_(max_image_pixels) {
    STRATA_CHECK(max_image_pixels_ >= 1, "dataset: max_image_pixels must be at least 1, got ", max_image_pixels_);
    classes_ = std::move(classes);
    STRATA_CHECK(!entries_.empty(), "dataset: ", description_, " has no samples");
    STRATA_CHECK(classes_.count() > 0, "dataset: ", description_, " has no classes");
    has_labels_ = !entries_[0].label.empty();
    // Missing files are found now rather than hours into training. Checking existence costs one stat per file.
    int64_t missing = 0;
    std::string first_missing;
    for (const FileEntry& e : entries_) {
        STRATA_CHECK(e.label.empty() != has_labels_, "dataset: ", description_, ": some samples have a label and "
                     "some do not (sample '", e.name, "' ", has_labels_ ? "has none" : "has one", ")");
        for (const std::string* path : {&e.image, &e.label}) {
            std::error_code ec;
            if (path->empty() || fs::is_regular_file(*path, ec)) continue;
            if (missing == 0) first_missing = *path;
            ++missing;
        }
    }
    STRATA_CHECK(missing == 0, "dataset: ", description_, ": ", missing, " file(s) missing, the first: ",
                 first_missing);
}

const FileEntry& FileDataset::entry(int64_t index) const {
    STRATA_CHECK(index >= 0 && index < size(), "dataset: index ", index, " out of range for ", description_, " (",
                 size(), " samples)");
    return entries_[size_t(index)];
}

std::string FileDataset::name(int64_t index) const { return entry(index).name; }

Sample FileDataset::get(int64_t index) const {
    const FileEntry& e = entry(index);
    Sample sample;
    sample.name = e.name;
    sample.image = load_rgb(e.image, max_image_pixels_);
    if (e.label.empty()) return sample;
    sample.label = load_label(e.label, max_image_pixels_);
    STRATA_CHECK(sample.label.h == sample.image.h && sample.label.w == sample.image.w,
                 "dataset: image and label sizes differ for sample '", e.name, "': ", e.image, " is ", sample.image.w,
                 "x", sample.image.h, " (width x height) but ", e.label, " is ", sample.label.w, "x", sample.label.h);
    map_and_check_label(sample.label, e.mapping, num_classes(), e.label);
    return sample;
}

// ---- the format registry ----

namespace {

// A function-local static, so that registrars running during static initialisation, in any order, find the map
// constructed (as the layer registry does).
std::map<std::string, DatasetOpener>& registry() {
    static std::map<std::string, DatasetOpener> formats;
    return formats;
}

std::string join(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? "none" : s;
}

}  // namespace

std::string DatasetOptions::get_string(const std::string& key, const std::string& fallback) const {
    auto it = config.find(key);
    if (it == config.end()) return fallback;
    STRATA_CHECK(it->is_string(), "dataset ", format, ": ", key, " must be a string, got ", it->dump());
    return it->get<std::string>();
}

int64_t DatasetOptions::get_int(const std::string& key, int64_t fallback) const {
    auto it = config.find(key);
    if (it == config.end()) return fallback;
    STRATA_CHECK(it->is_number_integer(), "dataset ", format, ": ", key, " must be an integer, got ", it->dump());
    return it->get<int64_t>();
}

std::string DatasetOptions::root() const {
    std::string root = get_string("data_root", "");
    STRATA_CHECK(!root.empty(), "dataset: the format '", format,
                 "' needs a data root (the data_root config key, e.g. data_root=/data/VOCdevkit/VOC2012)");
    return root;
}

void register_dataset(const std::string& format, DatasetOpener opener) {
    STRATA_CHECK(registry().emplace(format, opener).second, "dataset format '", format, "' registered twice");
}

std::vector<std::string> dataset_formats() {
    std::vector<std::string> names;
    for (const auto& [name, opener] : registry()) names.push_back(name);
    return names;
}

std::shared_ptr<Dataset> open_dataset(const DatasetOptions& options) {
    auto it = registry().find(options.format);
    STRATA_CHECK(it != registry().end(), "dataset: unknown format '", options.format, "'; known formats: ",
                 join(dataset_formats()), " (each registers itself with REGISTER_DATASET in data/<format>.cpp)");
    STRATA_CHECK(options.config.is_object(), "dataset ", options.format, ": the config must be a JSON object, got ",
                 options.config.dump());
    return it->second(options);
}

std::shared_ptr<Dataset> open_dataset(const std::string& format, const std::string& split,
                                      const nlohmann::json& config) {
    return open_dataset(DatasetOptions{format, split, config});
}

}  // namespace strata
