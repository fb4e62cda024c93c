// The dataset formats, each read from small files the test writes, and every bad-input case users run into.
#include <doctest/doctest.h>

#include <filesystem>

#include "data/formats.h"
#include "framework/check.h"
#include "tests/data/data_test_util.h"

using namespace strata;
using strata::testing::block_labels;
using strata::testing::gradient_image;
using strata::testing::TempDir;
using strata::testing::write_text_file;
using strata::testing::contains;

namespace {

DatasetOptions config_of(const std::string& format, const std::string& root, const std::string& split = "train") {
    return DatasetOptions{format, split, {{"data_root", root}}};
}

DatasetOptions list_config(const TempDir& dir, const std::string& list, int classes) {
    return DatasetOptions{"list", list, {{"data_root", dir.path.string()}, {"classes", classes}}};
}

}  // namespace

TEST_CASE("datasets: semseg list file, with labels and image-only") {
    TempDir dir("ds_list");
    LabelMap a = block_labels(6, 8, {0, 3, 255}), b = block_labels(6, 8, {20, 1});
    save_jpg(dir.file("images/a.jpg"), gradient_image(6, 8));
    save_png(dir.file("images/b.png"), gradient_image(6, 8));
    save_label_png(dir.file("labels/a.png"), a);
    save_palette_png(dir.file("labels/b.png"), b);
    // a blank line and a DeepLab-style leading '/' on a root-relative path are accepted
    write_text_file(dir.file("train.txt"), "images/a.jpg labels/a.png\n\n/images/b.png   /labels/b.png\n");
    auto ds = open_dataset(list_config(dir, "train.txt", 21));
    REQUIRE(ds->size() == 2);
    CHECK(ds->has_labels());
    CHECK(ds->num_classes() == 21);
    CHECK(ds->name(1) == "b");
    Sample s0 = ds->get(0), s1 = ds->get(1);
    CHECK(s0.image.c == 3);
    CHECK(s0.label.data == a.data);
    CHECK(s1.label.data == b.data);
    CHECK(s1.image.data == gradient_image(6, 8).data);

    write_text_file(dir.file("test.txt"), "images/a.jpg\nimages/b.png\n");
    auto test = open_dataset(list_config(dir, "test.txt", 21));
    CHECK_FALSE(test->has_labels());
    CHECK(test->get(1).label.empty());

    // class names from a file; label mapping for ADE-style raw labels in a list
    write_text_file(dir.file("names.txt"), "zero\none\n\ntwo\n");
    DatasetOptions named = list_config(dir, "train.txt", 0);
    named.config["names_file"] = "names.txt";
    named.config["label_dir"] = 7;  // voc's key: the list format does not read it
    CHECK(open_dataset(named)->classes().names == std::vector<std::string>{"zero", "one", "two"});
    named.config["names_file"] = 3;
    CHECK_THROWS_WITH_AS(open_dataset(named), contains("dataset list: names_file must be a string, got 3"), Error);
}

TEST_CASE("datasets: list file errors name the file and the line") {
    TempDir dir("ds_list_errors");
    save_png(dir.file("a.png"), gradient_image(4, 4));
    save_label_png(dir.file("a_label.png"), LabelMap(4, 4, 1));
    std::string list = dir.file("list.txt");

    write_text_file(list, "a.png a_label.png\na.png a_label.png extra\n");
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 2)),
                         contains(list + ":2: expected \"image_path label_path\""), Error);
    write_text_file(list, "a.png a_label.png\n\na.png\n");
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 2)), contains(list + ":3: 1 path(s)"),
                         Error);
    write_text_file(list, "\n  \n");
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 2)), contains(list + " is empty"), Error);
    write_text_file(list, "a.png a_label.png\nb.png b_label.png\nc.png a_label.png\n");
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 2)),
                         contains("3 file(s) missing, the first: " + dir.file("b.png")), Error);
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "nolist.txt", 2)),
                         contains("list file not found: " + dir.file("nolist.txt")), Error);
    write_text_file(list, "a.png a_label.png\n");
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 0)), contains("names_file=... or "
                         "num_classes"), Error);
}

TEST_CASE("datasets: label checks at load time suggest the fix") {
    TempDir dir("ds_label_checks");
    save_png(dir.file("img.png"), gradient_image(4, 6));
    save_png(dir.file("small.png"), gradient_image(3, 6));
    std::string label = dir.file("label.png");
    write_text_file(dir.file("list.txt"), "img.png label.png\n");

    // sizes differ
    save_label_png(label, LabelMap(4, 6, 0));
    write_text_file(dir.file("small.txt"), "small.png label.png\n");
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "small.txt", 2))->get(0),
                         contains("image and label sizes differ for sample 'small': " + dir.file("small.png") +
                                           " is 6x3 (width x height) but " + label + " is 6x4"),
                         Error);
    // Cityscapes labelIds given where trainIds are expected
    save_label_png(label, block_labels(4, 6, {7, 26, 33}));
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 19))->get(0),
                         contains("label " + label + " holds value 26"), Error);
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 19))->get(0),
                         contains("did you mean trainIds?"), Error);
    // ...which the cityscapes_ids mapping fixes
    DatasetOptions mapped = list_config(dir, "list.txt", 19);
    mapped.config["label_mapping"] = "cityscapes_ids";
    CHECK(open_dataset(mapped)->get(0).label.data == block_labels(4, 6, {0, 13, 18}).data);
    // raw ADE20K labels (0..150) with 150 classes
    save_label_png(label, block_labels(4, 6, {0, 150}));
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 150))->get(0),
                         contains("ADE20K labels need the minus-one shift"), Error);
    DatasetOptions reduced = list_config(dir, "list.txt", 150);
    reduced.config["label_mapping"] = "ade20k_reduce_zero";
    CHECK(open_dataset(reduced)->get(0).label.data == block_labels(4, 6, {255, 149}).data);
    // a VOC label converted to grayscale luma
    save_label_png(label, block_labels(4, 6, {0, 38, 75}));
    CHECK_THROWS_WITH_AS(open_dataset(list_config(dir, "list.txt", 21))->get(0), contains("luma values"),
                         Error);
    // 255 is always allowed
    save_label_png(label, block_labels(4, 6, {0, 1, 255}));
    CHECK(open_dataset(list_config(dir, "list.txt", 2))->get(0).label.data == block_labels(4, 6, {0, 1, 255}).data);
    DatasetOptions bad = list_config(dir, "list.txt", 2);
    bad.config["label_mapping"] = "nope";
    CHECK_THROWS_WITH_AS(open_dataset(bad), contains("unknown label_mapping 'nope'; valid: none"), Error);
}

TEST_CASE("datasets: PASCAL VOC layout, SegmentationClass (palette) and SegmentationClassAug (grayscale)") {
    TempDir dir("ds_voc");
    std::string root = (dir.path / "VOCdevkit" / "VOC2012").string();
    auto at = [&](const std::string& rel) { return dir.file("VOCdevkit/VOC2012/" + rel); };
    LabelMap l1 = block_labels(5, 7, {0, 15, 255}), l2 = block_labels(5, 7, {20, 1, 0});
    save_jpg(at("JPEGImages/2007_000032.jpg"), gradient_image(5, 7));
    save_jpg(at("JPEGImages/2011_000003.jpg"), gradient_image(5, 7));
    save_palette_png(at("SegmentationClass/2007_000032.png"), l1);
    save_palette_png(at("SegmentationClass/2011_000003.png"), l2);
    save_label_png(at("SegmentationClassAug/2007_000032.png"), l1);
    save_label_png(at("SegmentationClassAug/2011_000003.png"), l2);
    write_text_file(at("ImageSets/Segmentation/train.txt"), "2007_000032\n2011_000003\n");
    write_text_file(at("ImageSets/Segmentation/val.txt"), "2011_000003\n");
    write_text_file(at("ImageSets/SegmentationAug/train_aug.txt"), "2011_000003\n2007_000032\n");

    auto train = open_voc(root, "train");
    REQUIRE(train->size() == 2);
    CHECK(train->num_classes() == 21);
    CHECK(train->classes().names[15] == "person");
    CHECK(train->name(0) == "2007_000032");
    CHECK(train->get(0).label.data == l1.data);
    CHECK(train->get(1).label.data == l2.data);
    DatasetOptions aug_config = config_of("voc", root, "train_aug");
    aug_config.config["label_dir"] = "SegmentationClassAug";
    auto aug = open_dataset(aug_config);
    CHECK(aug->size() == 2);
    CHECK(aug->get(0).label.data == l2.data);
}

TEST_CASE("datasets: VOC mistakes") {
    TempDir dir("ds_voc_errors");
    std::string root = (dir.path / "VOC2012").string();
    save_jpg(dir.file("VOC2012/JPEGImages/a.jpg"), gradient_image(4, 4));
    save_palette_png(dir.file("VOC2012/SegmentationClass/a.png"), LabelMap(4, 4, 21));
    write_text_file(dir.file("VOC2012/ImageSets/Segmentation/train.txt"), "a\n");
    write_text_file(dir.file("VOC2012/ImageSets/Segmentation/val.txt"), "a b\n");
    write_text_file(dir.file("VOC2012/ImageSets/Segmentation/test.txt"), "a\n");

    CHECK_THROWS_WITH_AS(open_voc(dir.path.string(), "train"), contains("did you mean " + root), Error);
    CHECK_THROWS_WITH_AS(open_voc(root, "trian"), contains("no split 'trian'"), Error);
    CHECK_THROWS_WITH_AS(open_voc(root, "trian"), contains("splits found:"), Error);
    CHECK_THROWS_WITH_AS(open_voc(root, "val"), contains("val.txt:1: expected one image id per line"), Error);
    CHECK_THROWS_WITH_AS(open_voc(root, "train", "SegmentationClassAug"),
                         contains("SegmentationClassAug is not in the VOC tarball"), Error);
    CHECK_THROWS_WITH_AS(open_voc(root, "train")->get(0),
                         contains("label " + dir.file("VOC2012/SegmentationClass/a.png") + " holds value 21"),
                         Error);
    auto test = open_voc(root, "test");
    CHECK_FALSE(test->has_labels());
    CHECK(test->get(0).image.w == 4);

    // labelme-style class_names.txt next to the data replaces the VOC classes
    write_text_file(dir.file("VOC2012/class_names.txt"), "_background_\nthing\n");
    write_text_file(dir.file("VOC2012/class_colors.txt"), "1 2 3\n4 5 6\n");
    auto own = open_voc(root, "test");
    CHECK(own->classes().names == std::vector<std::string>{"_background_", "thing"});
    CHECK(own->classes().colors[1] == Rgb{4, 5, 6});
    write_text_file(dir.file("VOC2012/class_colors.txt"), "1 2 3\n4 5\n");
    CHECK_THROWS_WITH_AS(open_voc(root, "test"), contains("class_colors.txt:2: expected \"R G B\""), Error);
}

TEST_CASE("datasets: Cityscapes labelIds map to the 19 trainIds, labelTrainIds are used as they are") {
    TempDir dir("ds_cityscapes");
    std::string root = dir.path.string();
    // every labelId 0..33 once, in a 5x7 image (one extra pixel of 7 = road)
    LabelMap ids(5, 7);
    for (int i = 0; i < 35; ++i) ids.data[size_t(i)] = i < 34 ? i : 7;
    save_png(dir.file("leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"), gradient_image(5, 7));
    save_label_png(dir.file("gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"), ids);
    LabelMap train_ids = block_labels(5, 7, {0, 18, 255});
    save_png(dir.file("leftImg8bit/train/bremen/bremen_000001_000002_leftImg8bit.png"), gradient_image(5, 7));
    save_label_png(dir.file("gtFine/train/bremen/bremen_000001_000002_gtFine_labelIds.png"), LabelMap(5, 7, 0));
    save_label_png(dir.file("gtFine/train/bremen/bremen_000001_000002_gtFine_labelTrainIds.png"), train_ids);

    auto ds = open_dataset(config_of("cityscapes", root));
    REQUIRE(ds->size() == 2);
    CHECK(ds->num_classes() == 19);
    CHECK(ds->classes().names[13] == "car");
    CHECK(ds->name(0) == "aachen_000000_000019");
    // the official table, written out
    std::vector<int32_t> expected = {255, 255, 255, 255, 255, 255, 255, 0,   1,   255, 255, 2,
                                     3,   4,   255, 255, 255, 5,   255, 6,   7,   8,   9,   10,
                                     11,  12,  13,  14,  15,  255, 255, 16,  17,  18,  0};
    CHECK(ds->get(0).label.data == expected);
    CHECK(ds->get(1).label.data == train_ids.data);
    CHECK(cityscapes_train_id(-1) == 255);

    // an instanceIds file put where labelIds belong
    LabelMap instances(5, 7, 26001);
    save_label_png(dir.file("gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"), instances, 16);
    CHECK_THROWS_WITH_AS(ds->get(0), contains("looks like an instanceId"), Error);
    // a labelTrainIds file that holds labelIds
    save_label_png(dir.file("gtFine/train/bremen/bremen_000001_000002_gtFine_labelTrainIds.png"), LabelMap(5, 7, 26));
    CHECK_THROWS_WITH_AS(ds->get(1), contains("did you mean trainIds?"), Error);

    // a missing label, and a wrong split
    save_png(dir.file("leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png"), gradient_image(5, 7));
    std::filesystem::create_directories(dir.path / "gtFine" / "val");
    CHECK_THROWS_WITH_AS(open_cityscapes(root, "val"),
                         contains("1 file(s) missing, the first: " +
                                           dir.file("gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png")),
                         Error);
    CHECK_THROWS_WITH_AS(open_cityscapes(root, "test"), contains("leftImg8bit/test not found"), Error);
}

TEST_CASE("datasets: ADE20K minus one with 0 -> 255, grayscale JPEGs become RGB") {
    TempDir dir("ds_ade");
    std::string root = (dir.path / "ADEChallengeData2016").string();
    Image gray(6, 5, 1);
    for (size_t i = 0; i < gray.data.size(); ++i) gray.data[i] = uint8_t(10 * i);
    save_jpg(dir.file("ADEChallengeData2016/images/training/ADE_train_00000001.jpg"), gray);
    save_label_png(dir.file("ADEChallengeData2016/annotations/training/ADE_train_00000001.png"),
                   block_labels(6, 5, {0, 1, 150, 13}));
    auto ds = open_dataset(config_of("ade20k", root));
    REQUIRE(ds->size() == 1);
    CHECK(ds->num_classes() == 150);
    CHECK(ds->classes().names[0] == "wall");
    CHECK(ds->classes().names[149] == "flag");
    CHECK(ds->classes().colors[149] == Rgb{92, 0, 255});
    Sample s = ds->get(0);
    CHECK(s.image.c == 3);
    CHECK(s.label.data == block_labels(6, 5, {255, 0, 149, 12}).data);

    save_label_png(dir.file("ADEChallengeData2016/annotations/training/ADE_train_00000001.png"),
                   block_labels(6, 5, {0, 255}));
    CHECK_THROWS_WITH_AS(ds->get(0), contains("looks already converted"), Error);
    CHECK_THROWS_WITH_AS(open_ade20k(dir.path.string(), "training"), contains("did you mean the root"),
                         Error);
    CHECK_THROWS_WITH_AS(open_ade20k(root, "validation"), contains("images/validation not found"), Error);
}

TEST_CASE("datasets: every format is registered by its name, and an unknown name lists the known ones") {
    CHECK(dataset_formats() == std::vector<std::string>{"ade20k", "cityscapes", "contextscenes", "list", "voc"});
    CHECK_THROWS_WITH_AS(open_dataset(config_of("coco", "/tmp")),
                         contains("unknown format 'coco'; known formats: ade20k, cityscapes, contextscenes, list, voc"),
                         Error);
    // each name reaches its own format, whose message names it
    for (const std::string format : {"voc", "cityscapes", "ade20k", "list"})
        CHECK_THROWS_WITH_AS(open_dataset(config_of(format, "")), contains("'" + format + "' needs a data root"),
                             Error);
    for (const std::string format : {"voc", "cityscapes", "ade20k"})
        CHECK_THROWS_WITH_AS(open_dataset(config_of(format, "/nonexistent/strata/ds")),
                             contains(format + ": data root not found: /nonexistent/strata/ds"), Error);
    CHECK_THROWS_WITH_AS(open_dataset("list", "x.txt", {{"data_root", "/nonexistent/strata/ds"}, {"classes", 2}}),
                         contains("list dataset: list file not found"), Error);
    CHECK(open_dataset("contextscenes", "val", {{"scene_val", 3}})->description().find("contextscenes 'val'") == 0);
    CHECK_THROWS_WITH_AS(open_dataset("voc", "train", {{"data_root", "/tmp"}, {"max_image_pixels", "many"}}),
                         contains("dataset voc: max_image_pixels must be an integer"), Error);
    // a name is taken once
    CHECK_THROWS_WITH_AS(register_dataset("voc", [](const DatasetOptions&) { return std::shared_ptr<Dataset>(); }),
                         contains("dataset format 'voc' registered twice"), Error);
}
