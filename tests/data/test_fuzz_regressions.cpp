// Replays every input the fuzzers ever found a problem with (fuzz/regressions/<target>/, see fuzz/README.md), and
// the seed corpora (fuzz/seeds/<target>/), through the same entry points the libFuzzer targets call
// (fuzz/targets.h), in the normal build: each must give a clean strata::Error or succeed. A crash fails the suite;
// another exception type fails the check.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/targets.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_in(const fs::path& folder) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) return files;
    for (const auto& e : fs::directory_iterator(folder))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<uint8_t> bytes_of(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("fuzz regressions: every kept input gives a clean error or succeeds") {
    REQUIRE_MESSAGE(fs::is_directory("fuzz/regressions"), "run the tests from the repository root (make test does)");
    size_t replayed = 0;
    for (const strata::fuzz::Target& target : strata::fuzz::targets()) {
        for (const char* kind : {"regressions", "seeds"}) {
            std::vector<fs::path> files = files_in(fs::path("fuzz") / kind / target.name);
            if (std::string(kind) == "seeds") CHECK_MESSAGE(!files.empty(), "no seeds for fuzz target ", target.name);
            for (const fs::path& file : files) {
                INFO("fuzz target '", std::string(target.name), "', input ", file.string());
                std::vector<uint8_t> bytes = bytes_of(file);
                CHECK_NOTHROW(target.run(bytes.data(), bytes.size()));
                ++replayed;
            }
        }
    }
    CHECK(replayed > 0);
}

TEST_CASE("fuzz regressions: the hostile image inputs are refused with the decoder's or the limit's message") {
    // The regression replay only asks for "no crash"; these name what each kept file must say.
    auto message_of = [](const std::string& path, bool label) -> std::string {
        try {
            if (label) strata::load_label(path);
            else strata::load_rgb(path);
        } catch (const strata::Error& e) {
            return e.what();
        }
        return "";
    };
    CHECK(message_of("fuzz/regressions/image/truncated.jpg", false).find("(libjpeg: Premature end of JPEG file)") !=
          std::string::npos);
    CHECK(message_of("fuzz/regressions/image/bad_huffman_counts.jpg", false).find("(libjpeg: Bogus Huffman table") !=
          std::string::npos);
    CHECK(message_of("fuzz/regressions/image/claims_65000x65000.jpg", false)
              .find("claims 65000x65000 = 4225000000 pixels, more than max_image_pixels=100000000") !=
          std::string::npos);
    CHECK(message_of("fuzz/regressions/label/claims_60000x60000.png", true)
              .find("claims 60000x60000 = 3600000000 pixels, more than max_image_pixels=100000000") !=
          std::string::npos);
    CHECK(message_of("fuzz/regressions/image/claims_100000x100000.bmp", false)
              .find("claims 100000x100000 = 10000000000 pixels") != std::string::npos);
}
