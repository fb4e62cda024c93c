// make_contextscenes: writes the ContextScenes dataset to disk in PASCAL VOC layout (what `make data` runs).
//
//   build/bin/make_contextscenes [config.json] [out=...] [seed=...] [train=...] [val=...] [size=...] [min_gap=...]
//                                [threads=0]
//
// The settings come from a run config, configs/contextscenes.json unless another is named: out = data_root,
// seed = seed, size = scene_size, min_gap = scene_min_gap, train = scene_train, val = scene_val (keys the file does
// not set keep their defaults, those of ContextScenesConfig in data/contextscenes.h). So the dataset on disk is the
// one the config trains on, and no other place writes these numbers down; key=value arguments override them.
//
// Does nothing when the folder already holds a complete copy with the same settings; a copy left incomplete by an
// interrupted run is detected and written again (see write_context_scenes in data/contextscenes.h).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "data/contextscenes.h"
#include "framework/check.h"
#include "framework/plugin.h"
#include "models/pspnet/config.h"

using namespace strata;

namespace {

const char* kDefaultConfig = "configs/contextscenes.json";

std::string usage(const std::string& config_path, const ContextScenesConfig& c, const std::string& out) {
    return str("usage: make_contextscenes [config.json] [key=value ...]\n"
               "  config.json                  the run config whose dataset to write (default: ", kDefaultConfig, ")\n"
               "  out=", out, "   output folder (the config's data_root; VOC layout)\n"
               "  seed=", c.seed, "                       the dataset's seed (the config's seed)\n"
               "  train=", c.train_count, " val=", c.val_count, "           images per split (scene_train, scene_val)\n"
               "  size=", c.size, "                     image height and width (scene_size)\n"
               "  min_gap=", c.min_gap, "                   rows between the scene band and any object (scene_min_gap)\n"
               "  threads=0                    writer threads (0: one per core)\n"
               "The values shown are those of ", config_path, ".\n");
}

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
        argc = take_plugin_options(argc, argv);  // --plugin PATH, --list-layers: every program's (framework/plugin.h)
        std::string config_path = kDefaultConfig;
        int first = 1;
        if (argc > 1 && std::string(argv[1]).find('=') == std::string::npos && argv[1][0] != '-') {
            config_path = argv[1];
            first = 2;
        }
        STRATA_CHECK(std::filesystem::exists(config_path), "make_contextscenes: no config '", config_path,
                     "' (run it from the repository root, or name a config: make_contextscenes path/to/config.json)");
        pspnet::RunConfig run = pspnet::load_config(config_path, {});
        ContextScenesConfig config = context_scenes_config(pspnet::to_json(run));
        std::string out = run.data.root;
        STRATA_CHECK(!out.empty(), "make_contextscenes: ", config_path, " sets no data_root; pass out=<folder>");
        int threads = 0;
        for (int i = first; i < argc; ++i) {
            std::string arg = argv[i];
            if (arg == "-h" || arg == "--help") {
                std::cout << usage(config_path, config, out);
                return 0;
            }
            size_t eq = arg.find('=');
            STRATA_CHECK(eq != std::string::npos, "make_contextscenes: expected key=value, got '", arg, "'\n",
                         usage(config_path, config, out));
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
