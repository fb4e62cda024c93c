// TensorBoard event files: CRC-32C against the standard test vector, and a small independent reader (TFRecord
// framing, both masked CRCs, the protobuf fields of Event/Summary/Value) that reads back what the writer wrote.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "framework/check.h"
#include "framework/tensorboard.h"
#include "tests/tensorboard_reader.h"

using namespace strata;
namespace fs = std::filesystem;

TEST_CASE("tensorboard: CRC-32C and its mask match the published values") {
    CHECK(crc32c("123456789", 9) == 0xE3069283u);  // the CRC catalogue's check value for CRC-32C
    CHECK(crc32c("", 0) == 0u);
    // RFC 3720 (iSCSI) B.4: 32 bytes of zeros
    std::string zeros(32, '\0');
    CHECK(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
    uint32_t c = crc32c("123456789", 9);
    CHECK(masked_crc32c("123456789", 9) == uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

TEST_CASE("tensorboard: the writer's event file reads back with valid CRCs, tags, steps and values") {
    std::string dir = "build/test_runs/tensorboard";
    fs::remove_all(dir);
    std::string path;
    {
        TensorBoardWriter tb(dir);
        path = tb.path();
        tb.add_scalar("train/loss", 2.5, 10);
        tb.add_scalar("train/lr", 0.0125, 10);
        tb.add_scalar("val/mIoU", 0.75, 20);
        tb.add_scalar("big/step", -1.0, int64_t(1) << 40);
    }
    REQUIRE(fs::path(path).parent_path() == fs::path(dir));
    REQUIRE(fs::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<testing::TbEvent> events = testing::read_tensorboard_events(bytes);
    REQUIRE(events.size() == 5);
    CHECK(events[0].file_version == "brain.Event:2");
    CHECK(events[0].wall_time > 1.6e9);  // seconds since 1970, not milliseconds or zero
    CHECK(events[0].tag.empty());
    struct Expected {
        const char* tag;
        float value;
        int64_t step;
    };
    Expected want[] = {{"train/loss", 2.5f, 10}, {"train/lr", 0.0125f, 10}, {"val/mIoU", 0.75f, 20},
                       {"big/step", -1.0f, int64_t(1) << 40}};
    for (size_t i = 0; i < 4; ++i) {
        CAPTURE(i);
        CHECK(events[i + 1].tag == want[i].tag);
        CHECK(events[i + 1].value == want[i].value);
        CHECK(events[i + 1].step == want[i].step);
        CHECK(events[i + 1].wall_time >= events[0].wall_time);
    }
    // a flipped bit anywhere is caught by one of the two CRCs
    for (size_t at : {size_t(3), size_t(10), bytes.size() - 6}) {
        std::string bad = bytes;
        bad[at] = char(bad[at] ^ 0x10);
        CHECK_THROWS_AS(testing::read_tensorboard_events(bad), Error);
    }
}
