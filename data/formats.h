// The file formats' own entry points, for tools and tests; programs open a format by its name through
// open_dataset (data/dataset.h), which reaches these through each format's registered opener.
//
//   list            semseg's list file: "image_path label_path" per line (list_dataset.cpp)
//   voc             PASCAL VOC 2012 and SBD's SegmentationClassAug (voc.cpp)
//   cityscapes      leftImg8bit + gtFine, labelIds mapped to the 19 trainIds when needed (cityscapes.cpp)
//   ade20k          ADEChallengeData2016, labels minus one with 0 -> 255 (ade20k.cpp)
//   contextscenes   the built-in dataset generated in memory (contextscenes.cpp, with its own header,
//                   contextscenes.h); `make data` writes it to disk in VOC layout instead, which voc reads
#pragma once

#include <memory>
#include <string>

#include "data/dataset.h"

namespace strata {

// The class tables of the standard datasets (the names in semseg's data/<ds>/<ds>_names.txt order).
ClassInfo voc_classes();         // 21: background, aeroplane, ..., tvmonitor; the VOC colour map
ClassInfo cityscapes_classes();  // 19 trainIds: road, sidewalk, ..., bicycle; the Cityscapes colours
ClassInfo ade20k_classes();      // 150: wall, building, ..., flag (after the minus-one shift)

// The label mappings (LabelMapping) of the formats whose files do not hold class indices; the list format offers
// them as label_mapping=cityscapes_ids and label_mapping=ade20k_reduce_zero.
void cityscapes_ids_to_train_ids(LabelMap& label, const std::string& path);  // labelIds 0..33 -> 19 trainIds, else 255
void ade20k_reduce_zero(LabelMap& label, const std::string& path);           // 0..150: 0 -> 255, v -> v - 1
int32_t cityscapes_train_id(int32_t label_id);  // the official table: 7 -> 0 (road), ..., 33 -> 18; others 255

// Each takes max_image_pixels, the largest width x height an image or label file may claim before it is refused
// (the config key of that name; see load_rgb).
// semseg's list file. Each line is "image label" (or "image" alone for an image-only list; all lines must have the
// same number of fields). Paths are relative to `data_root`; an absolute path that exists is used as is, and a
// leading "/" on a path that only exists under the root (DeepLab-style lists) is taken as relative.
std::shared_ptr<Dataset> open_list_dataset(const std::string& list_file, const std::string& data_root,
                                           ClassInfo classes, LabelMapping mapping = nullptr,
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

}  // namespace strata
