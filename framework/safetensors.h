// Reading and writing the safetensors format (huggingface/safetensors), the weight format of Strata.
//
//   bytes [0, 8)        N, the header length, u64 little-endian
//   bytes [8, 8+N)      a JSON object: "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
//                       and optionally "__metadata__": {string: string}; padded with spaces to a multiple of 8
//   bytes [8+N, EOF)    the tensors' bytes, row-major little-endian, back to back; offsets are relative to 8+N
//
// The reader checks what the reference implementation checks, so a truncated or hostile file gives an Error that
// says what is wrong with it, never a crash or an out-of-bounds read: the header length bound (100 MB); the header
// fits in the file and is a JSON object without duplicate keys; every entry has a known dtype, a shape of
// non-negative integers and two offsets; sizes agree with shape x dtype (overflow-checked); sorted by offset, the
// tensors tile the buffer from 0 with no gap or overlap; and the buffer ends exactly at the end of the file.
//
// Strata tensors are F32, I32 or I64; a valid file holding other dtypes (F16, BF16, F64, ...) is read as far as
// validation and then refused with a message that names the tensor and its dtype.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "framework/tensor.h"

namespace strata {

struct SafetensorsFile {
    std::vector<std::pair<std::string, Tensor>> tensors;  // in file order (by data offset)
    std::map<std::string, std::string> metadata;

    bool has(const std::string& name) const;
    const Tensor& get(const std::string& name) const;  // error naming the file's tensors if absent
    std::map<std::string, Tensor> as_map() const;
};

// Writes atomically (write_file_atomically): the bytes go to "<path>.tmp" and are renamed over `path` only when
// complete and on disk, so an interrupted save never destroys the previous file. Tensors may live on any device.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);

// The same, in memory (for tests and for formats that embed safetensors).
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source = "<memory>");

// Writes `bytes` to `path` through a temporary file and a rename (used by every file Strata saves). The file is
// fsynced before the rename and its folder after it, so a power loss leaves either the old or the new file. On a
// failure (a full disk) the temporary file is removed and `path` is untouched.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace strata
