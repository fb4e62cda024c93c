// Helpers shared by the data tests: a temporary folder that removes itself, and small synthetic images.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/image.h"

namespace strata::testing {

// A fresh folder under the system's temporary directory, removed with everything in it at the end of the test.
struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& tag) {
        path = std::filesystem::temp_directory_path() / ("strata_test_" + tag + "_" + std::to_string(::getpid()));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // The path of `relative` inside the folder, creating its parent folders.
    std::string file(const std::string& relative) const {
        std::filesystem::path p = path / relative;
        std::filesystem::create_directories(p.parent_path());
        return p.string();
    }
};

// doctest::Contains for a std::string (doctest's String is built from a C string).
inline doctest::Contains contains(const std::string& text) { return doctest::Contains(text.c_str()); }

inline void write_text_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

// A w x h RGB image whose pixel (x, y) is (x * 7, y * 11, x + y) mod 256: every pixel differs from its neighbours.
inline Image gradient_image(int h, int w) {
    Image image(h, w, 3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = image.pixel(y, x);
            p[0] = uint8_t(x * 7);
            p[1] = uint8_t(y * 11);
            p[2] = uint8_t(x + y);
        }
    return image;
}

// A label map whose values run through `values` in blocks of `block` pixels.
inline LabelMap block_labels(int h, int w, const std::vector<int32_t>& values, int block = 4) {
    LabelMap label(h, w);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) label.at(y, x) = values[size_t((x / block + y / block) % int(values.size()))];
    return label;
}

}  // namespace strata::testing
