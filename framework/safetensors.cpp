// safetensors reader and writer (see safetensors.h for the format and the checks).
#include "framework/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "framework/check.h"

namespace strata {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100000000;

// Size in bits of every dtype the format defines, so that files with dtypes Strata does not use still validate.
int dtype_bits(const std::string& name) {
    static const std::map<std::string, int> bits = {
        {"BOOL", 8}, {"U8", 8},  {"I8", 8},   {"I16", 16}, {"U16", 16}, {"F16", 16},     {"BF16", 16},
        {"I32", 32}, {"U32", 32}, {"F32", 32}, {"F64", 64}, {"I64", 64}, {"U64", 64},     {"C64", 64},
        {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
    };
    auto it = bits.find(name);
    return it == bits.end() ? 0 : it->second;
}

bool strata_dtype(const std::string& name, DType& out) {
    if (name == "F32") out = DType::F32;
    else if (name == "I32") out = DType::I32;
    else if (name == "I64") out = DType::I64;
    else return false;
    return true;
}

// a * b, failing instead of wrapping around.
uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& what) {
    STRATA_CHECK(b == 0 || a <= UINT64_MAX / b, what, ": size overflows 64 bits");
    return a * b;
}

// nlohmann::json keeps the last of duplicate keys silently; this parse callback rejects them instead.
nlohmann::json parse_header(const std::string& text, const std::string& source) {
    std::vector<std::set<std::string>> keys_per_object;
    std::string duplicate;
    auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using E = nlohmann::json::parse_event_t;
        if (event == E::object_start) keys_per_object.emplace_back();
        else if (event == E::object_end) keys_per_object.pop_back();
        else if (event == E::key && !keys_per_object.empty()) {
            std::string k = parsed.get<std::string>();
            if (!keys_per_object.back().insert(k).second && duplicate.empty()) duplicate = k;
        }
        return true;
    };
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(text, callback);
    } catch (const nlohmann::json::exception& e) {
        STRATA_FAIL(source, ": the safetensors header is not valid JSON (", e.what(), ")");
    }
    STRATA_CHECK(duplicate.empty(), source, ": the safetensors header has the key '", duplicate, "' twice");
    return header;
}

struct Entry {
    std::string name;
    std::string dtype;
    Shape shape;
    uint64_t begin = 0, end = 0;
};

}  // namespace

bool SafetensorsFile::has(const std::string& name) const {
    for (auto& [n, t] : tensors)
        if (n == name) return true;
    return false;
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
    for (auto& [n, t] : tensors)
        if (n == name) return t;
    std::string names;
    for (size_t i = 0; i < tensors.size() && i < 20; ++i) names += (i ? ", " : "") + tensors[i].first;
    STRATA_FAIL("no tensor named '", name, "' in this safetensors file (it has: ", names.empty() ? "none" : names,
                tensors.size() > 20 ? ", ..." : "", ")");
}

std::map<std::string, Tensor> SafetensorsFile::as_map() const {
    return std::map<std::string, Tensor>(tensors.begin(), tensors.end());
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
    const uint64_t file_size = bytes.size();
    STRATA_CHECK(file_size >= 8, source, ": too short for a safetensors file (", file_size,
                 " bytes; the 8-byte header length alone is missing)");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
    STRATA_CHECK(n <= kMaxHeaderBytes, source, ": header length ", n, " exceeds the 100 MB limit (not a safetensors "
                 "file, or a corrupt one)");
    STRATA_CHECK(8 + n <= file_size, source, ": the header claims ", n, " bytes but the file has only ",
                 file_size - 8, " after the length field (truncated file?)");

    nlohmann::json header = parse_header(bytes.substr(8, size_t(n)), source);
    STRATA_CHECK(header.is_object(), source, ": the safetensors header must be a JSON object");

    SafetensorsFile out;
    std::vector<Entry> entries;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const nlohmann::json& v = it.value();
        if (name == "__metadata__") {
            STRATA_CHECK(v.is_object(), source, ": __metadata__ must be an object of strings");
            for (auto m = v.begin(); m != v.end(); ++m) {
                STRATA_CHECK(m.value().is_string(), source, ": __metadata__ value of '", m.key(),
                             "' is not a string");
                out.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        std::string where = source + ": tensor '" + name + "'";
        STRATA_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), where,
                     " needs \"dtype\", \"shape\" and \"data_offsets\"");
        STRATA_CHECK(v["dtype"].is_string() && dtype_bits(v["dtype"].get<std::string>()) > 0, where,
                     " has an unknown dtype ", v["dtype"].dump());
        Entry e;
        e.name = name;
        e.dtype = v["dtype"].get<std::string>();
        STRATA_CHECK(v["shape"].is_array(), where, ": shape must be a list");
        for (const auto& d : v["shape"]) {
            STRATA_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where,
                         ": shape entries must be non-negative integers, got ", v["shape"].dump());
            STRATA_CHECK(d.get<uint64_t>() <= uint64_t(INT64_MAX), where, ": shape entry too large");
            e.shape.push_back(d.get<int64_t>());
        }
        const nlohmann::json& off = v["data_offsets"];
        STRATA_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                     where, ": data_offsets must be two non-negative integers, got ", off.dump());
        e.begin = off[0].get<uint64_t>();
        e.end = off[1].get<uint64_t>();
        STRATA_CHECK(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] run backwards");
        uint64_t numel = 1;
        for (int64_t d : e.shape) numel = checked_mul(numel, uint64_t(d), where);
        uint64_t bits = checked_mul(numel, uint64_t(dtype_bits(e.dtype)), where);
        STRATA_CHECK(bits % 8 == 0, where, ": ", numel, " elements of ", e.dtype, " do not fill whole bytes");
        STRATA_CHECK(e.end - e.begin == bits / 8, where, ": data_offsets span ", e.end - e.begin, " bytes but shape ",
                     shape_str(e.shape), " of ", e.dtype, " needs ", bits / 8);
        entries.push_back(std::move(e));
    }

    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t expected = 0;
    for (const Entry& e : entries) {
        STRATA_CHECK(e.begin == expected, source, ": tensor '", e.name, "' starts at byte ", e.begin, " of the data ",
                     e.begin > expected ? "leaving a gap after byte " : "overlapping the previous tensor, which ends at ",
                     expected, " (tensors must be back to back)");
        expected = e.end;
    }
    const uint64_t data_size = file_size - 8 - n;
    STRATA_CHECK(expected == data_size, source, ": the tensors cover ", expected, " bytes but the file holds ",
                 data_size, " bytes of data (", expected > data_size ? "truncated file" : "trailing bytes",
                 "): file not fully covered");

    const char* data = bytes.data() + 8 + n;
    for (const Entry& e : entries) {
        DType dt;
        STRATA_CHECK(strata_dtype(e.dtype, dt), source, ": tensor '", e.name, "' is ", e.dtype,
                     "; Strata reads F32, I32 and I64 (convert the file, e.g. with torch: t.float())");
        Tensor t = empty(e.shape, dt, kCPU);
        if (e.end > e.begin) std::memcpy(t.raw(), data + e.begin, size_t(e.end - e.begin));
        out.tensors.emplace_back(e.name, t);
    }
    return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    STRATA_CHECK(in.good(), "cannot open '", path, "' for reading (does the file exist?)");
    std::ostringstream buf;
    buf << in.rdbuf();
    return parse_safetensors(buf.str(), path);
}

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::set<std::string> names;
    uint64_t offset = 0;
    std::vector<Tensor> host;
    for (const auto& [name, t] : tensors) {
        STRATA_CHECK(name != "__metadata__", "save_safetensors: '__metadata__' is reserved, not a tensor name");
        STRATA_CHECK(names.insert(name).second, "save_safetensors: the name '", name, "' appears twice");
        Tensor h = t.detach().contiguous().to(kCPU);
        uint64_t nbytes = uint64_t(h.numel()) * dtype_size(h.dtype());
        header[name] = {{"dtype", dtype_name(h.dtype())}, {"shape", h.shape()}, {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        host.push_back(h);
    }
    std::string text = header.dump();
    while (text.size() % 8 != 0) text += ' ';
    std::string out(8, '\0');
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
    out += text;
    out.reserve(out.size() + offset);
    for (const Tensor& h : host)
        out.append(static_cast<const char*>(h.raw()), size_t(h.numel()) * dtype_size(h.dtype()));
    return out;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
    // Write, fsync the file, rename, fsync the folder. Without the first fsync a power loss after the rename can
    // leave `path` naming an empty or partial file (the rename reached the disk before the data); without the
    // second the rename itself may be lost, and with it the newest file. A failure removes the temporary file and
    // leaves `path` as it was.
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    STRATA_CHECK(fd >= 0, "cannot open '", tmp, "' for writing (", std::strerror(errno),
                 "; does the folder exist and is it writable?)");
    auto fail = [&](const char* what) {
        int err = errno;
        ::close(fd);
        std::remove(tmp.c_str());
        STRATA_FAIL(what, " '", tmp, "' failed (", std::strerror(err), "); '", path, "' was left untouched");
    };
    for (size_t done = 0; done < bytes.size();) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = ENOSPC;
            fail("writing");
        }
        done += size_t(n);
    }
    if (::fsync(fd) != 0) fail("syncing (fsync)");
    if (::close(fd) != 0) {
        int err = errno;
        std::remove(tmp.c_str());
        STRATA_FAIL("writing '", tmp, "' failed at close (", std::strerror(err), "); '", path, "' was left untouched");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        std::remove(tmp.c_str());
        STRATA_FAIL("cannot rename '", tmp, "' to '", path, "' (", std::strerror(err), ")");
    }
    std::string dir = std::filesystem::path(path).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        // Some file systems cannot sync a folder (EINVAL); the file itself is on disk by now.
        int rc = ::fsync(dfd);
        int err = errno;
        ::close(dfd);
        STRATA_CHECK(rc == 0 || err == EINVAL || err == ENOTSUP, "syncing the folder of '", path, "' failed (",
                     std::strerror(err), ")");
    }
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    write_file_atomically(path, serialize_safetensors(tensors, metadata));
}

}  // namespace strata
