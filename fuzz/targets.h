// The entry points of the fuzz targets, shared by the libFuzzer programs (fuzz/fuzz_<target>.cpp, built by
// `make fuzz`) and by the regression test (tests/data/test_fuzz_regressions.cpp, run by `make test`), so that every
// input kept under fuzz/regressions/<target>/ goes through exactly the code the fuzzer ran it through.
//
// Each entry point feeds the bytes to one of Strata's readers of untrusted input. A strata::Error is the reader
// refusing the input cleanly and counts as success; anything else (a crash, a sanitizer report, another exception
// type, a hang) is a bug.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/formats.h"
#include "data/image.h"
#include "framework/check.h"
#include "framework/safetensors.h"
#include "models/pspnet/config.h"

namespace strata::fuzz {

// Images up to 2^22 pixels: enough for every header field to matter, small enough that a fuzzer does not spend
// its time zeroing claimed-but-absent pixels.
constexpr int64_t kFuzzMaxPixels = int64_t(1) << 22;

// A per-process scratch folder for the targets whose reader takes a path.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        std::filesystem::path d = std::filesystem::temp_directory_path() /
                                  ("strata_fuzz_" + std::to_string(::getpid()));
        std::filesystem::create_directories(d);
        return d;
    }();
    return dir;
}

inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
    std::string path = (scratch_dir() / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    return path;
}

// framework/safetensors: the whole reader (header length, JSON header, offsets, dtypes, tensor bytes).
inline void safetensors_target(const uint8_t* data, size_t size) {
    try {
        SafetensorsFile file = parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "<fuzz>");
        for (const auto& [name, tensor] : file.tensors) (void)tensor.numel();
    } catch (const Error&) {
    }
}

// data/image: a photo file (JPEG, PNG or BMP), decoded to RGB.
inline void image_target(const uint8_t* data, size_t size) {
    try {
        Image image = decode_rgb(data, size, "<fuzz>", kFuzzMaxPixels);
        if (image.data.size() != size_t(image.h) * size_t(image.w) * 3) std::abort();
    } catch (const Error&) {
    }
}

// data/image: a label PNG, decoded to class indices.
inline void label_target(const uint8_t* data, size_t size) {
    try {
        LabelMap label = decode_label(data, size, "<fuzz>", kFuzzMaxPixels);
        if (label.data.size() != size_t(label.h) * size_t(label.w)) std::abort();
    } catch (const Error&) {
    }
}

// models/pspnet/config: a config file (JSON with comments) loaded over the defaults, checked and read into the typed
// RunConfig (every value load_config accepts must fit its field).
inline void config_target(const uint8_t* data, size_t size) {
    std::string path = write_scratch("config.json", data, size);
    try {
        (void)pspnet::load_config(path, {});
    } catch (const Error&) {
    }
}

// data/list_dataset: a semseg list file over a root that holds one valid image and label (a.png, b.png); every
// sample the list names is then opened, so that paths reaching real files are decoded too.
inline void list_target(const uint8_t* data, size_t size) {
    static const std::string root = [] {
        std::filesystem::path r = scratch_dir() / "root";
        std::filesystem::create_directories(r);
        save_png((r / "a.png").string(), Image(4, 5, 3));
        save_label_png((r / "b.png").string(), LabelMap(4, 5, 1));
        return r.string();
    }();
    std::string list = write_scratch("list.txt", data, size);
    try {
        ClassInfo classes;
        classes.names = {"zero", "one"};
        classes.colors = {voc_color(0), voc_color(1)};
        std::shared_ptr<Dataset> ds = open_list_dataset(list, root, classes, nullptr, kFuzzMaxPixels);
        for (int64_t i = 0; i < ds->size() && i < 4; ++i) {
            try {
                (void)ds->get(i);
            } catch (const Error&) {
            }
        }
    } catch (const Error&) {
    }
}

struct Target {
    const char* name;  // the folder under fuzz/regressions/ and the program build/fuzz/fuzz_<name>
    void (*run)(const uint8_t* data, size_t size);
};

inline const std::vector<Target>& targets() {
    static const std::vector<Target> all = {
        {"safetensors", safetensors_target}, {"image", image_target}, {"label", label_target},
        {"config", config_target},           {"list", list_target},
    };
    return all;
}

}  // namespace strata::fuzz
