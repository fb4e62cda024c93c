// Scalars as TensorBoard event files, written without TensorFlow or protobuf (the format is small enough to
// encode by hand).
//
//   TensorBoardWriter tb("runs/x/tensorboard");   // creates the folder and events.out.tfevents.<time>.<host>.<pid>
//   tb.add_scalar("train/loss", 0.73f, 100);      // one Event record per call, flushed at once
//
// An event file is a sequence of TFRecords:
//   uint64 length (little-endian) | uint32 masked_crc32c(the 8 length bytes) | data | uint32 masked_crc32c(data)
// with masked_crc(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 and CRC-32C the Castagnoli CRC (reflected polynomial
// 0x82f63b78). Each record's data is a serialised tensorflow.Event protobuf; the fields used here are
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }      Value { string tag = 1; float simple_value = 2; }
// The first record of a file holds only wall_time and file_version = "brain.Event:2", as TensorFlow writes it.
// Every writer starts a new file (TensorBoard reads all files of a folder), so a resumed run keeps its history.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace strata {

// CRC-32C (Castagnoli) of `n` bytes; crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n);
// The masked CRC that TFRecord stores (so that a CRC of data holding CRCs is not degenerate).
uint32_t masked_crc32c(const void* data, size_t n);

// Protobuf encodings of the Event messages above (exposed for tests).
std::string tensorboard_version_event(double wall_time);
std::string tensorboard_scalar_event(const std::string& tag, float value, int64_t step, double wall_time);
// One TFRecord around `data`.
std::string tfrecord(const std::string& data);

class TensorBoardWriter {
public:
    // Creates `dir` and a new event file in it; an error naming the folder when it cannot be written.
    explicit TensorBoardWriter(const std::string& dir);
    ~TensorBoardWriter();
    TensorBoardWriter(const TensorBoardWriter&) = delete;
    TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

    // Appends one scalar at `step` (wall time: now) and flushes, so TensorBoard sees it while the run goes on.
    void add_scalar(const std::string& tag, double value, int64_t step);
    const std::string& path() const { return path_; }

private:
    void write(const std::string& record);
    std::string path_;
    std::FILE* file_ = nullptr;
};

}  // namespace strata
