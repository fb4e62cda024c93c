// semseg's list-file dataset (semseg util/dataset.py).
//
//   images/training/ADE_train_00000001.jpg annotations/training/ADE_train_00000001.png
//   images/training/ADE_train_00000002.jpg annotations/training/ADE_train_00000002.png
//
// One sample per line, the two paths separated by spaces, both relative to the data root. A list of one path per
// line is an image-only list (semseg's `test` split). Blank lines are skipped; any other line with a different
// number of fields is an error that gives the line number. Labels are used as they are (class indices, 255 =
// ignore) unless a LabelMapping is given.
//
// Through open_dataset("list", split, config): the split is the list file, relative to data_root unless absolute;
// the classes come from names_file (one name per line, relative to data_root) or, without one, from classes (the
// count); label_mapping is none, cityscapes_ids or ade20k_reduce_zero.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/formats.h"
#include "framework/check.h"

namespace strata {

namespace fs = std::filesystem;

namespace {

// A list path resolved against the root. DeepLab-style lists write "/JPEGImages/x.jpg" meaning "under the root";
// semseg joins with os.path.join, which would discard the root for such a path. We use an absolute path as is when
// it exists, and under the root otherwise.
std::string resolve(const std::string& root, const std::string& path) {
    fs::path p(path);
    std::error_code ec;
    if (p.is_absolute() && (root.empty() || fs::exists(p, ec))) return path;
    return (fs::path(root) / p.relative_path()).string();
}

}  // namespace

std::shared_ptr<Dataset> open_list_dataset(const std::string& list_file, const std::string& data_root,
                                           ClassInfo classes, LabelMapping mapping, int64_t max_image_pixels) {
    std::error_code ec;
    STRATA_CHECK(fs::is_regular_file(list_file, ec), "list dataset: list file not found: ", list_file);
    if (!data_root.empty())
        STRATA_CHECK(fs::is_directory(data_root, ec), "list dataset: data root not found: ", data_root);
    std::ifstream in(list_file);
    STRATA_CHECK(in, "list dataset: cannot read ", list_file);

    std::vector<FileEntry> entries;
    size_t fields_per_line = 0;  // decided by the first non-blank line: 2 = image + label, 1 = image only
    std::string line;
    int line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        std::istringstream words(line);
        std::vector<std::string> fields;
        for (std::string w; words >> w;) fields.push_back(w);
        if (fields.empty()) continue;
        STRATA_CHECK(fields.size() <= 2, "list dataset: ", list_file, ":", line_number, ": expected \"image_path "
                     "label_path\" (or one image path for a test list), got ", fields.size(), " fields: \"", line,
                     "\" (paths with spaces are not supported)");
        if (fields_per_line == 0) fields_per_line = fields.size();
        STRATA_CHECK(fields.size() == fields_per_line, "list dataset: ", list_file, ":", line_number, ": ",
                     fields.size(), " path(s) on this line but ", fields_per_line, " on the first line; every line "
                     "must be \"image_path label_path\", or every line a single image path");
        FileEntry e;
        e.image = resolve(data_root, fields[0]);
        if (fields.size() == 2) e.label = resolve(data_root, fields[1]);
        e.name = fs::path(fields[0]).stem().string();
        e.mapping = mapping;
        entries.push_back(e);
    }
    STRATA_CHECK(!entries.empty(), "list dataset: ", list_file, " is empty (expected lines \"image_path "
                 "label_path\")");
    std::string description = str("list ", list_file, " (", entries.size(), " images)");
    return std::make_shared<FileDataset>(description, std::move(entries), std::move(classes), max_image_pixels);
}

namespace {

std::string under_root(const std::string& root, const std::string& path) {
    if (path.empty() || fs::path(path).is_absolute() || root.empty()) return path;
    return (fs::path(root) / path).string();
}

LabelMapping parse_label_mapping(const std::string& name) {
    if (name == "none" || name.empty()) return nullptr;
    if (name == "cityscapes_ids") return cityscapes_ids_to_train_ids;
    if (name == "ade20k_reduce_zero") return ade20k_reduce_zero;
    STRATA_FAIL("dataset: unknown label_mapping '", name, "'; valid: none, cityscapes_ids, ade20k_reduce_zero");
}

std::shared_ptr<Dataset> open_list_from_config(const DatasetOptions& o) {
    std::string root = o.root(), names_file = o.get_string("names_file", "");
    int64_t num_classes = o.get_int("classes", 0);
    STRATA_CHECK(!o.split.empty(), "dataset: the format 'list' needs a list file (the split names it)");
    ClassInfo classes;
    if (!names_file.empty()) {
        classes = read_class_info(under_root(root, names_file));
        STRATA_CHECK(num_classes == 0 || num_classes == classes.count(), "dataset: num_classes is ", num_classes,
                     " but ", names_file, " lists ", classes.count(), " classes");
    } else {
        STRATA_CHECK(num_classes > 0 && num_classes <= 255, "dataset: the format 'list' needs the classes: "
                     "names_file=... or num_classes=1..255 (got ", num_classes, ")");
        for (int i = 0; i < int(num_classes); ++i) {
            classes.names.push_back(str("class_", i));
            classes.colors.push_back(voc_color(i));
        }
    }
    return open_list_dataset(under_root(root, o.split), root, classes,
                             parse_label_mapping(o.get_string("label_mapping", "none")), o.max_image_pixels());
}

}  // namespace

REGISTER_DATASET("list", open_list_from_config);

}  // namespace strata
