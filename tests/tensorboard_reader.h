// A minimal reader of TensorBoard event files for the tests, written from the format description and independent
// of the writer's encoder: TFRecord framing with both masked CRC-32Cs checked, and the protobuf fields of
// Event { wall_time = 1 (double), step = 2 (varint), file_version = 3 (string), summary = 5 } /
// Summary { value = 1 } / Value { tag = 1 (string), simple_value = 2 (float) }. Unknown fields are skipped.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "framework/check.h"
#include "framework/tensorboard.h"

namespace strata::testing {

struct TbEvent {
    double wall_time = 0;
    int64_t step = 0;
    std::string file_version;
    std::string tag;    // of the first summary value (the writer puts one per event)
    float value = 0;
};

namespace tb_detail {

struct Cursor {
    const uint8_t* p;
    const uint8_t* end;
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            STRATA_CHECK(p < end, "event: truncated varint");
            uint8_t b = *p++;
            v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        STRATA_FAIL("event: varint longer than 10 bytes");
    }
    uint64_t fixed(int bytes) {
        STRATA_CHECK(end - p >= bytes, "event: truncated fixed field");
        uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
        p += bytes;
        return v;
    }
    std::string bytes() {
        uint64_t n = varint();
        STRATA_CHECK(uint64_t(end - p) >= n, "event: truncated string");
        std::string s(reinterpret_cast<const char*>(p), size_t(n));
        p += n;
        return s;
    }
    void skip(int wire_type) {
        if (wire_type == 0) varint();
        else if (wire_type == 1) fixed(8);
        else if (wire_type == 2) bytes();
        else if (wire_type == 5) fixed(4);
        else STRATA_FAIL("event: unsupported wire type ", wire_type);
    }
};

inline Cursor cursor(const std::string& s) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(s.data());
    return {p, p + s.size()};
}

inline void parse_value(const std::string& data, TbEvent& e) {
    Cursor c = cursor(data);
    while (c.p < c.end) {
        uint64_t key = c.varint();
        int field = int(key >> 3), wire = int(key & 7);
        if (field == 1 && wire == 2) e.tag = c.bytes();
        else if (field == 2 && wire == 5) {
            uint32_t bits = uint32_t(c.fixed(4));
            std::memcpy(&e.value, &bits, 4);
        } else c.skip(wire);
    }
}

inline TbEvent parse_event(const std::string& data) {
    TbEvent e;
    Cursor c = cursor(data);
    while (c.p < c.end) {
        uint64_t key = c.varint();
        int field = int(key >> 3), wire = int(key & 7);
        if (field == 1 && wire == 1) {
            uint64_t bits = c.fixed(8);
            std::memcpy(&e.wall_time, &bits, 8);
        } else if (field == 2 && wire == 0) e.step = int64_t(c.varint());
        else if (field == 3 && wire == 2) e.file_version = c.bytes();
        else if (field == 5 && wire == 2) {
            std::string summary = c.bytes();
            Cursor sc = cursor(summary);
            while (sc.p < sc.end) {
                uint64_t k = sc.varint();
                if ((k >> 3) == 1 && (k & 7) == 2) parse_value(sc.bytes(), e);
                else sc.skip(int(k & 7));
            }
        } else c.skip(wire);
    }
    return e;
}

inline uint32_t le32(const std::string& s, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(s[at + size_t(i)])) << (8 * i);
    return v;
}

}  // namespace tb_detail

// Every record of an event file's bytes; an Error on a bad CRC or a truncated record.
inline std::vector<TbEvent> read_tensorboard_events(const std::string& bytes) {
    std::vector<TbEvent> events;
    size_t at = 0;
    while (at < bytes.size()) {
        STRATA_CHECK(bytes.size() - at >= 12, "event file: truncated record header at byte ", at);
        uint64_t length = 0;
        for (int i = 0; i < 8; ++i) length |= uint64_t(uint8_t(bytes[at + size_t(i)])) << (8 * i);
        STRATA_CHECK(tb_detail::le32(bytes, at + 8) == masked_crc32c(bytes.data() + at, 8),
                     "event file: bad length CRC at byte ", at);
        STRATA_CHECK(bytes.size() - at - 12 >= length + 4, "event file: truncated record at byte ", at);
        std::string data = bytes.substr(at + 12, size_t(length));
        STRATA_CHECK(tb_detail::le32(bytes, at + 12 + size_t(length)) == masked_crc32c(data.data(), data.size()),
                     "event file: bad data CRC at byte ", at);
        events.push_back(tb_detail::parse_event(data));
        at += 12 + size_t(length) + 4;
    }
    return events;
}

}  // namespace strata::testing
