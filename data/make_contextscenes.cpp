// make_contextscenes: writes the ContextScenes dataset to disk in PASCAL VOC layout (what `make data` runs).
//
//   build/bin/make_contextscenes [out=datasets/contextscenes] [seed=0] [train=2000] [val=400] [size=97]
//                                [min_gap=24] [threads=0]
//
// Does nothing when the folder already holds a complete copy with the same settings; a copy left incomplete by an
// interrupted run is detected and written again (see write_context_scenes in data/contextscenes.h).
#include <cstdio>
#include <iostream>
#include <string>

#include "data/contextscenes.h"
#include "framework/check.h"

using namespace strata;

namespace {

const char* kUsage =
    "usage: make_contextscenes [key=value ...]\n"
    "  out=datasets/contextscenes   output folder (VOC layout: JPEGImages, SegmentationClass, ImageSets)\n"
    "  seed=0                       the dataset's seed\n"
    "  train=2000 val=400           images per split\n"
    "  size=97                      image height and width\n"
    "  min_gap=24                   rows between the scene band and any object\n"
    "  threads=0                    writer threads (0: one per core)\n";

int64_t parse_int(const std::string& key, const std::string& value) {
    size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(value, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    STRATA_CHECK(used == value.size() && !value.empty(), "make_contextscenes: ", key, " must be an integer, got '",
                 value, "'");
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        ContextScenesConfig config;
        std::string out = "datasets/contextscenes";
        int threads = 0;
        for (int i = 1; i < argc; ++i) {
            std::string arg = argv[i];
            if (arg == "-h" || arg == "--help") {
                std::cout << kUsage;
                return 0;
            }
            size_t eq = arg.find('=');
            STRATA_CHECK(eq != std::string::npos, "make_contextscenes: expected key=value, got '", arg, "'\n", kUsage);
            std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
            if (key == "out") out = value;
            else if (key == "seed") config.seed = uint64_t(parse_int(key, value));
            else if (key == "train") config.train_count = parse_int(key, value);
            else if (key == "val") config.val_count = parse_int(key, value);
            else if (key == "size") config.size = int(parse_int(key, value));
            else if (key == "min_gap") config.min_gap = int(parse_int(key, value));
            else if (key == "threads") threads = int(parse_int(key, value));
            else STRATA_FAIL("make_contextscenes: unknown key '", key, "'; valid: out, seed, train, val, size, "
                             "min_gap, threads");
        }
        ContextScenesWriteResult result = write_context_scenes(out, config, threads);
        if (result.skipped) {
            std::printf("ContextScenes: %s is complete (seed %llu, %lld train + %lld val), nothing to do\n",
                        out.c_str(), static_cast<unsigned long long>(config.seed),
                        static_cast<long long>(config.train_count), static_cast<long long>(config.val_count));
        } else {
            std::printf("ContextScenes: wrote %lld images (%lld train + %lld val, %dx%d, seed %llu) to %s in %.2f s\n",
                        static_cast<long long>(result.images), static_cast<long long>(config.train_count),
                        static_cast<long long>(config.val_count), config.size, config.size,
                        static_cast<unsigned long long>(config.seed), out.c_str(), result.seconds);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
