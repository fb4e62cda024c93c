// semseg's list-file dataset (semseg util/dataset.py).
//
//   images/training/ADE_train_00000001.jpg annotations/training/ADE_train_00000001.png
//   images/training/ADE_train_00000002.jpg annotations/training/ADE_train_00000002.png
//
// One sample per line, the two paths separated by spaces, both relative to the data root. A list of one path per
// line is an image-only list (semseg's `test` split). Blank lines are skipped; any other line with a different
// number of fields is an error that gives the line number. Labels are used as they are (class indices, 255 =
// ignore) unless a LabelMapping is given.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/dataset.h"
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

}  // namespace strata
