// safetensors: round trips, the reference example file byte for byte, and rejection of malformed files.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include "framework/check.h"
#include "framework/safetensors.h"

using namespace strata;

namespace {

// An 8-byte little-endian length, the header text, then `data`.
std::string file_with(const std::string& header, const std::string& data, int64_t length_override = -1) {
    uint64_t n = length_override >= 0 ? uint64_t(length_override) : header.size();
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
    return out + header + data;
}

std::string floats(std::initializer_list<float> v) {
    std::string s;
    for (float f : v) s.append(reinterpret_cast<const char*>(&f), 4);
    return s;
}

void rejects(const std::string& bytes, const std::string& message) {
    CHECK_THROWS_WITH_AS(parse_safetensors(bytes, "bad.safetensors"), doctest::Contains(message.c_str()), Error);
}

}  // namespace

TEST_CASE("safetensors: round trip of F32, I32, I64, scalars, empty tensors and metadata") {
    std::vector<std::pair<std::string, Tensor>> tensors = {
        {"conv.weight", from_vector({1, 2, 3, 4, 5, 6}, {1, 2, 3})},
        {"labels", from_vector_i32({7, -8}, {2})},
        {"bn.num_batches_tracked", from_vector_i64({12345678901}, {})},
        {"empty", zeros({0, 4})},
        {"strided", arange(6).reshape({2, 3}).transpose(0, 1)},  // saved as its row-major contents
    };
    std::string bytes = serialize_safetensors(tensors, {{"format", "pt"}});
    CHECK((bytes.size() - 8) % 8 == 0);
    SafetensorsFile f = parse_safetensors(bytes);
    CHECK(f.metadata.at("format") == "pt");
    CHECK(f.get("conv.weight").shape() == Shape{1, 2, 3});
    CHECK(f.get("conv.weight").to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK(f.get("labels").to_vector_i64() == std::vector<int64_t>{7, -8});
    CHECK(f.get("bn.num_batches_tracked").shape() == Shape{});
    CHECK(f.get("bn.num_batches_tracked").to_vector_i64()[0] == 12345678901);
    CHECK(f.get("empty").shape() == Shape{0, 4});
    CHECK(f.get("strided").to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
    CHECK_THROWS_WITH_AS(f.get("nope"), doctest::Contains("no tensor named 'nope'"), Error);
}

TEST_CASE("safetensors: reads the format's reference example") {
    // {"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} padded to 88 bytes
    std::string header = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    header += std::string(88 - header.size(), ' ');
    SafetensorsFile f = parse_safetensors(file_with(header, floats({1, 2})));
    CHECK(f.get("w").to_vector() == std::vector<float>{1, 2});
    // and our writer produces exactly those bytes for the same content
    CHECK(serialize_safetensors({{"w", from_vector({1, 2}, {2})}}, {{"format", "pt"}}) ==
          file_with(header, floats({1, 2})));
}

TEST_CASE("safetensors: files with other dtypes validate, then are refused by name") {
    std::string h = R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})";
    rejects(file_with(h, "abcd"), "tensor 'h' is F16; Strata reads F32, I32 and I64");
}

TEST_CASE("safetensors: malformed files are rejected with a clear message") {
    const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const std::string data = floats({1, 2});
    rejects("", "too short for a safetensors file");
    rejects("abc", "too short");
    rejects(file_with(ok, data, 200000000), "exceeds the 100 MB limit");
    rejects(file_with(ok, data, int64_t(ok.size() + data.size() + 1)), "truncated file?");
    rejects(file_with("{\"a\": [1, 2", ""), "not valid JSON");
    rejects(file_with("[1, 2]", ""), "must be a JSON object");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                      data),
            "has the key 'a' twice");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[2]}})", data), "needs \"dtype\", \"shape\" and \"data_offsets\"");
    rejects(file_with(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", data), "unknown dtype \"F31\"");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "non-negative integers");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data), "non-negative integers");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data), "run backwards");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data), "must be two non-negative");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "needs 12");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", data),
            "overflows 64 bits");
    // gap and overlap between tensors
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data), "leaving a gap");
    rejects(file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                      data),
            "overlapping the previous tensor");
    // trailing bytes, missing bytes
    rejects(file_with(ok, data + "xx"), "trailing bytes");
    rejects(file_with(ok, data.substr(0, 6)), "truncated file");
    rejects(file_with(R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
            "__metadata__ value of 'k' is not a string");
    // and the good one still parses
    CHECK(parse_safetensors(file_with(ok, data)).get("a").to_vector() == std::vector<float>{1, 2});
}

TEST_CASE("safetensors: every truncation of a valid file is rejected, never a crash") {
    std::string bytes = serialize_safetensors({{"x", arange(5)}, {"y", from_vector_i64({1, 2}, {2})}});
    for (size_t n = 0; n < bytes.size(); ++n)
        CHECK_THROWS_AS(parse_safetensors(bytes.substr(0, n)), Error);
}

TEST_CASE("safetensors: saving is atomic and loading reports missing files") {
    std::string path = "build/test_safetensors_atomic.safetensors";
    save_safetensors(path, {{"v", from_vector({3, 4}, {2})}});
    CHECK(load_safetensors(path).get("v").to_vector() == std::vector<float>{3, 4});
    CHECK_FALSE(std::ifstream(path + ".tmp").good());  // the temporary was renamed away
    // a save that fails half-way (unwritable folder) leaves the old file alone
    CHECK_THROWS_AS(save_safetensors("build/no-such-folder/x.safetensors", {{"v", zeros({1})}}), Error);
    std::remove(path.c_str());
    CHECK_THROWS_WITH_AS(load_safetensors("build/does-not-exist.safetensors"), doctest::Contains("cannot open"), Error);
}
