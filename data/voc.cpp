// PASCAL VOC 2012 segmentation (and SBD's SegmentationClassAug), in the layout of the VOC tarball:
//
//   VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt   one id per line, e.g. 2007_000032
//   VOC2012/JPEGImages/<id>.jpg
//   VOC2012/SegmentationClass/<id>.png      palette PNG: the pixel's palette INDEX is the class (0..20, 255 void)
//   VOC2012/SegmentationClassAug/<id>.png   8-bit grayscale, same values (train_aug; a separate download)
//
// Palette labels are read by index (load_label); converting them to RGB or grayscale would lose the class.
//
// Through open_dataset("voc", split, config): data_root, label_dir (SegmentationClass or SegmentationClassAug).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/formats.h"
#include "framework/check.h"

namespace strata {

namespace fs = std::filesystem;

ClassInfo voc_classes() {
    ClassInfo info;
    info.names = {"background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
                  "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                  "train", "tvmonitor"};
    for (int i = 0; i < info.count(); ++i) info.colors.push_back(voc_color(i));
    return info;
}

namespace {

// The split file: ImageSets/Segmentation/<split>.txt, or ImageSets/SegmentationAug/<split>.txt (train_aug).
std::string find_split_file(const fs::path& root, const std::string& split) {
    for (const char* folder : {"Segmentation", "SegmentationAug"}) {
        fs::path p = root / "ImageSets" / folder / (split + ".txt");
        std::error_code ec;
        if (fs::is_regular_file(p, ec)) return p.string();
    }
    std::string available;
    std::error_code ec;
    fs::path folder = root / "ImageSets" / "Segmentation";
    if (fs::is_directory(folder, ec)) {
        for (const auto& f : fs::directory_iterator(folder))
            if (f.path().extension() == ".txt") available += " " + f.path().stem().string();
    }
    STRATA_FAIL("voc: no split '", split, "': ", (folder / (split + ".txt")).string(), " not found",
                available.empty() ? std::string("") : "; splits found:" + available);
}

}  // namespace

std::shared_ptr<Dataset> open_voc(const std::string& root_in, const std::string& split, const std::string& label_dir,
                                  int64_t max_image_pixels) {
    fs::path root(root_in);
    std::error_code ec;
    STRATA_CHECK(fs::is_directory(root, ec), "voc: data root not found: ", root_in);
    if (!fs::is_directory(root / "JPEGImages", ec)) {
        for (const char* inner : {"VOC2012", "VOCdevkit/VOC2012"})
            STRATA_CHECK(!fs::is_directory(root / inner / "JPEGImages", ec), "voc: ", root_in, " has no JPEGImages/ "
                         "folder; did you mean ", (root / inner).string(), "?");
        STRATA_FAIL("voc: ", root_in, " has no JPEGImages/ folder (the root must be the VOC2012 folder that holds "
                    "JPEGImages/, SegmentationClass/ and ImageSets/)");
    }
    bool has_labels = split != "test";
    if (has_labels) {
        std::string hint = label_dir == "SegmentationClassAug" ? " (SegmentationClassAug is not in the VOC tarball: "
                                                                 "it is made from SBD and downloaded separately)"
                                                               : "";
        STRATA_CHECK(fs::is_directory(root / label_dir, ec), "voc: label folder not found: ",
                     (root / label_dir).string(), hint);
    }

    std::string split_file = find_split_file(root, split);
    std::ifstream in(split_file);
    STRATA_CHECK(in, "voc: cannot read ", split_file);
    std::vector<FileEntry> entries;
    std::string line;
    int line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        std::istringstream words(line);
        std::vector<std::string> fields;
        for (std::string w; words >> w;) fields.push_back(w);
        if (fields.empty()) continue;
        STRATA_CHECK(fields.size() == 1, "voc: ", split_file, ":", line_number, ": expected one image id per line, "
                     "got \"", line, "\"", fields.size() == 2 ? " (a two-column list of paths: use the format 'list')"
                     : "");
        FileEntry e;
        e.name = fields[0];
        fs::path jpg = root / "JPEGImages" / (e.name + ".jpg");
        fs::path png = root / "JPEGImages" / (e.name + ".png");
        e.image = (!fs::exists(jpg, ec) && fs::exists(png, ec)) ? png.string() : jpg.string();
        if (has_labels) e.label = (root / label_dir / (e.name + ".png")).string();
        entries.push_back(e);
    }
    STRATA_CHECK(!entries.empty(), "voc: ", split_file, " lists no image ids");

    // labelme's VOC export and ContextScenes name their own classes next to the data.
    ClassInfo classes = voc_classes();
    fs::path names = root / "class_names.txt", colors = root / "class_colors.txt";
    if (fs::is_regular_file(names, ec))
        classes = read_class_info(names.string(), fs::is_regular_file(colors, ec) ? colors.string() : "");

    std::string description = str("voc '", split, "' in ", root_in, " (", entries.size(), " images)");
    return std::make_shared<FileDataset>(description, std::move(entries), std::move(classes), max_image_pixels);
}

namespace {

std::shared_ptr<Dataset> open_voc_from_config(const DatasetOptions& o) {
    std::string root = o.root();
    // datasets/contextscenes (configs/contextscenes.json) is not in the repository: `make data` writes it
    fs::path normal = fs::path(root).lexically_normal();
    if (normal.filename().empty()) normal = normal.parent_path();  // a trailing '/'
    if (normal.filename() == "contextscenes" && !fs::exists(normal))
        STRATA_FAIL("data_root '", root, "' does not exist: the ContextScenes dataset is written there by `make data` "
                    "(run it once from the repository root), or use dataset=contextscenes to generate it in memory");
    return open_voc(root, o.split, o.get_string("label_dir", "SegmentationClass"), o.max_image_pixels());
}

}  // namespace

REGISTER_DATASET("voc", open_voc_from_config);

}  // namespace strata
