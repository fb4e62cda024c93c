// Cityscapes (fine annotations), found by scanning the folders:
//
//   leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
//   gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   0..18, 255 (made by cityscapesScripts)
//   gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        0..33 (in the download)
//
// Training uses the 19 trainIds. A labelTrainIds file is used as is when present; otherwise the labelIds file is
// mapped through the official table (cityscapesScripts helpers/labels.py), every id not in it going to 255.
#include <algorithm>
#include <filesystem>

#include "data/formats.h"
#include "framework/check.h"

namespace strata {

namespace fs = std::filesystem;

ClassInfo cityscapes_classes() {
    ClassInfo info;
    info.names = {"road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                  "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                  "bicycle"};
    info.colors = {{128, 64, 128}, {244, 35, 232}, {70, 70, 70},   {102, 102, 156}, {190, 153, 153},
                   {153, 153, 153}, {250, 170, 30}, {220, 220, 0}, {107, 142, 35},  {152, 251, 152},
                   {70, 130, 180},  {220, 20, 60},  {255, 0, 0},   {0, 0, 142},     {0, 0, 70},
                   {0, 60, 100},    {0, 80, 100},   {0, 0, 230},   {119, 11, 32}};
    return info;
}

int32_t cityscapes_train_id(int32_t label_id) {
    // labelId -> trainId for the 19 evaluated classes (road 7, sidewalk 8, building 11, wall 12, fence 13, pole 17,
    // traffic light 19, traffic sign 20, vegetation 21, terrain 22, sky 23, person 24, rider 25, car 26, truck 27,
    // bus 28, train 31, motorcycle 32, bicycle 33); everything else is ignored.
    static const int32_t table[34] = {255, 255, 255, 255, 255, 255, 255, 0,   1,   255, 255, 2,  3,  4,  255, 255, 255,
                                      5,   255, 6,   7,   8,   9,   10,  11,  12,  13,  14,  15, 255, 255, 16, 17, 18};
    return label_id >= 0 && label_id < 34 ? table[label_id] : kIgnoreLabel;
}

void cityscapes_ids_to_train_ids(LabelMap& label, const std::string& path) {
    for (int32_t& v : label.data) {
        STRATA_CHECK(v < 1000, "cityscapes: label ", path, " holds value ", v, ", which looks like an instanceId "
                     "(labelId * 1000 + instance): use the *_gtFine_labelIds.png file");
        STRATA_CHECK(v >= 0 && v <= 33, "cityscapes: label ", path, " holds value ", v, ", not a Cityscapes labelId "
                     "(0..33); is it a labelIds file of the official label table?");
        v = cityscapes_train_id(v);
    }
}

std::shared_ptr<Dataset> open_cityscapes(const std::string& root_in, const std::string& split,
                                         int64_t max_image_pixels) {
    fs::path root(root_in);
    std::error_code ec;
    STRATA_CHECK(fs::is_directory(root, ec), "cityscapes: data root not found: ", root_in);
    fs::path image_dir = root / "leftImg8bit" / split;
    STRATA_CHECK(fs::is_directory(image_dir, ec), "cityscapes: ", image_dir.string(), " not found (the root must hold "
                 "leftImg8bit/<split>/<city>/ and gtFine/<split>/<city>/; splits: train, val, test)");
    bool has_labels = split != "test";
    fs::path label_dir = root / "gtFine" / split;
    if (has_labels) STRATA_CHECK(fs::is_directory(label_dir, ec), "cityscapes: ", label_dir.string(), " not found");

    const std::string suffix = "_leftImg8bit.png";
    std::vector<FileEntry> entries;
    for (const auto& f : fs::recursive_directory_iterator(image_dir)) {
        std::string file = f.path().filename().string();
        if (!f.is_regular_file() || file.size() <= suffix.size() ||
            file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        FileEntry e;
        e.name = file.substr(0, file.size() - suffix.size());  // aachen_000000_000019
        e.image = f.path().string();
        if (has_labels) {
            fs::path city = f.path().parent_path().filename();
            fs::path train_ids = label_dir / city / (e.name + "_gtFine_labelTrainIds.png");
            fs::path ids = label_dir / city / (e.name + "_gtFine_labelIds.png");
            if (fs::is_regular_file(train_ids, ec)) {
                e.label = train_ids.string();
            } else {
                // labelIds, mapped; when it is missing too, FileDataset reports this path as missing
                e.label = ids.string();
                e.mapping = cityscapes_ids_to_train_ids;
            }
        }
        entries.push_back(e);
    }
    STRATA_CHECK(!entries.empty(), "cityscapes: no *", suffix, " files under ", image_dir.string());
    // directory order is unspecified; sort so that the dataset's indices are the same on every machine
    std::sort(entries.begin(), entries.end(), [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
    std::string description = str("cityscapes '", split, "' in ", root_in, " (", entries.size(), " images)");
    return std::make_shared<FileDataset>(description, std::move(entries), cityscapes_classes(), max_image_pixels);
}

namespace {

// Through open_dataset("cityscapes", split, config): data_root.
std::shared_ptr<Dataset> open_cityscapes_from_config(const DatasetOptions& o) {
    return open_cityscapes(o.root(), o.split, o.max_image_pixels());
}

}  // namespace

REGISTER_DATASET("cityscapes", open_cityscapes_from_config);

}  // namespace strata
