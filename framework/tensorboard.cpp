// TensorBoard event files by hand: CRC-32C, TFRecord framing and the few protobuf fields of an Event
// (see tensorboard.h).
#include "framework/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "framework/check.h"

namespace strata {

namespace {

// The byte-wise table of the reflected Castagnoli polynomial: table[b] is the CRC register after shifting b through.
std::array<uint32_t, 256> make_crc32c_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t b = 0; b < 256; ++b) {
        uint32_t c = b;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[b] = c;
    }
    return table;
}

// Protobuf wire format: a key is (field_number << 3) | wire_type; 0 = varint, 1 = 64-bit, 2 = length-delimited,
// 5 = 32-bit. Fixed-width values are little-endian.
void put_varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(char(uint8_t(v) | 0x80));
        v >>= 7;
    }
    out.push_back(char(uint8_t(v)));
}

void put_fixed(std::string& out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}

void put_key(std::string& out, int field, int wire_type) { put_varint(out, uint64_t(field) << 3 | uint64_t(wire_type)); }

void put_double(std::string& out, int field, double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    put_key(out, field, 1);
    put_fixed(out, bits, 8);
}

void put_bytes(std::string& out, int field, const std::string& bytes) {
    put_key(out, field, 2);
    put_varint(out, bytes.size());
    out += bytes;
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
    static const std::array<uint32_t, 256> table = make_crc32c_table();
    const uint8_t* p = static_cast<const uint8_t*>(data);
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
    uint32_t c = crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tensorboard_version_event(double wall_time) {
    std::string event;
    put_double(event, 1, wall_time);
    put_bytes(event, 3, "brain.Event:2");
    return event;
}

std::string tensorboard_scalar_event(const std::string& tag, float value, int64_t step, double wall_time) {
    std::string v;
    put_bytes(v, 1, tag);
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    put_key(v, 2, 5);
    put_fixed(v, bits, 4);
    std::string summary;
    put_bytes(summary, 1, v);
    std::string event;
    put_double(event, 1, wall_time);
    put_key(event, 2, 0);
    put_varint(event, uint64_t(step));  // int64 as a varint: negative steps take ten bytes, as protobuf does
    put_bytes(event, 5, summary);
    return event;
}

std::string tfrecord(const std::string& data) {
    std::string out;
    put_fixed(out, data.size(), 8);
    put_fixed(out, masked_crc32c(out.data(), 8), 4);
    out += data;
    put_fixed(out, masked_crc32c(data.data(), data.size()), 4);
    return out;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    STRATA_CHECK(!ec, "tensorboard: cannot create the folder '", dir, "' (", ec.message(),
                 "); set tensorboard=false to run without event files");
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    double t = now_seconds();
    // TensorBoard's naming: events.out.tfevents.<seconds>.<host>; the pid keeps two writers in one second apart.
    path_ = (std::filesystem::path(dir) / str("events.out.tfevents.", int64_t(t), ".", host, ".", getpid())).string();
    file_ = std::fopen(path_.c_str(), "ab");
    STRATA_CHECK(file_ != nullptr, "tensorboard: cannot write '", path_, "' (", std::strerror(errno),
                 "); set tensorboard=false to run without event files");
    write(tfrecord(tensorboard_version_event(t)));
}

TensorBoardWriter::~TensorBoardWriter() {
    if (file_) std::fclose(file_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
    write(tfrecord(tensorboard_scalar_event(tag, float(value), step, now_seconds())));
}

void TensorBoardWriter::write(const std::string& record) {
    bool ok = std::fwrite(record.data(), 1, record.size(), file_) == record.size() && std::fflush(file_) == 0;
    STRATA_CHECK(ok, "tensorboard: writing '", path_, "' failed (", std::strerror(errno),
                 "); free some space, or set tensorboard=false");
}

}  // namespace strata
