// Data-parallel helpers on top of the communicator (see data_parallel.h).
#include "framework/data_parallel.h"

#include <algorithm>
#include <string>

#include "framework/check.h"

namespace strata {

namespace {

// "name [shape] dtype" for each parameter and buffer, in state_dict order.
std::vector<std::string> model_entries(const Module& model) {
    std::vector<std::string> entries;
    for (const auto& [name, t] : model.state_dict())
        entries.push_back(str(name, " ", t.shape_string(), " ", dtype_name(t.dtype())));
    return entries;
}

// 64-bit FNV-1a of the entries (with a separator, so that ["ab", "c"] and ["a", "bc"] differ).
int64_t fingerprint(const std::vector<std::string>& entries) {
    uint64_t h = 1469598103934665603ull;
    for (const std::string& e : entries) {
        for (unsigned char ch : e + '\n') h = (h ^ ch) * 1099511628211ull;
    }
    return int64_t(h);
}

// Broadcasts rank root's strings (lengths, then the bytes one per I64).
std::vector<std::string> broadcast_strings(Communicator& comm, const std::vector<std::string>& mine, int root) {
    Tensor count = from_vector_i64({int64_t(mine.size())}, {1});
    broadcast(comm, count, root);
    const int64_t n = count.to_vector_i64()[0];
    std::vector<int64_t> lengths(size_t(n), 0);
    if (comm.rank() == root)
        for (size_t i = 0; i < mine.size(); ++i) lengths[i] = int64_t(mine[i].size());
    Tensor length_tensor = from_vector_i64(lengths, {n});
    broadcast(comm, length_tensor, root);
    lengths = length_tensor.to_vector_i64();
    int64_t total = 0;
    for (int64_t l : lengths) total += l;
    std::vector<int64_t> bytes(size_t(total), 0);
    if (comm.rank() == root) {
        size_t k = 0;
        for (const std::string& s : mine)
            for (unsigned char ch : s) bytes[k++] = ch;
    }
    Tensor byte_tensor = from_vector_i64(bytes, {total});
    broadcast(comm, byte_tensor, root);
    bytes = byte_tensor.to_vector_i64();
    std::vector<std::string> out;
    size_t k = 0;
    for (int64_t l : lengths) {
        std::string s;
        for (int64_t i = 0; i < l; ++i) s += char(bytes[k++]);
        out.push_back(s);
    }
    return out;
}

// The first difference between two entry lists, as "rank A has X, rank B has Y".
std::string first_difference(const std::vector<std::string>& a, int rank_a, const std::vector<std::string>& b,
                             int rank_b) {
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    auto entry = [&](const std::vector<std::string>& v) {
        return i < v.size() ? v[i] : str("nothing more (", v.size(), " entries)");
    };
    return str("rank ", rank_a, " has ", entry(a), ", rank ", rank_b, " has ", entry(b));
}

}  // namespace

void check_same_model(Communicator& comm, const Module& model) {
    if (comm.world_size() == 1) return;
    std::vector<std::string> mine = model_entries(model);
    std::vector<int64_t> prints = all_gather(comm, from_vector_i64({fingerprint(mine)}, {1})).to_vector_i64();
    int first_different = -1;
    for (int r = 1; r < comm.world_size() && first_different < 0; ++r)
        if (prints[size_t(r)] != prints[0]) first_different = r;
    if (first_different < 0) return;
    // Every rank gets here. Each rank compares its own entries with rank 0's and says what differs.
    std::vector<std::string> rank0 = broadcast_strings(comm, mine, 0);
    if (comm.rank() != 0 && prints[size_t(comm.rank())] != prints[0])
        STRATA_FAIL("data parallel: rank ", comm.rank(), "'s model differs from rank 0's: ",
                    first_difference(rank0, 0, mine, comm.rank()),
                    ". Every rank must build the same model (the same config)");
    STRATA_FAIL("data parallel: rank ", first_different, "'s model differs from rank 0's (rank ", first_different,
                "'s error names the first difference). Every rank must build the same model (the same config)");
}

void broadcast_state(Communicator& comm, Module& model, int root) {
    for (const auto& [name, t] : model.state_dict()) {
        Tensor buf = t.contiguous();
        broadcast(comm, buf, root);
        if (!buf.is_same(t)) Tensor(t).copy_(buf);
    }
}

void average_gradients(Communicator& comm, const std::vector<Tensor>& parameters, int64_t bucket_bytes) {
    STRATA_CHECK(bucket_bytes > 0, "average_gradients: bucket_bytes must be > 0, got ", bucket_bytes);
    if (comm.world_size() == 1) return;
    const float scale = 1.0f / float(comm.world_size());
    // Buckets of consecutive parameters; each bucket is one host buffer of [gradients..., one flag per parameter
    // (1 where this rank has a gradient)].
    size_t begin = 0;
    while (begin < parameters.size()) {
        size_t end = begin;
        int64_t elements = 0;
        do {
            elements += parameters[end].numel();
            ++end;
        } while (end < parameters.size() && (elements + parameters[end].numel()) * 4 <= bucket_bytes);
        const int64_t flags = int64_t(end - begin);
        Tensor bucket = zeros({elements + flags});
        float* data = bucket.f32();
        int64_t offset = 0;
        for (size_t i = begin; i < end; ++i) {
            const Tensor& p = parameters[i];
            Tensor g = p.grad();
            if (g.defined()) {
                std::vector<float> values = g.to_vector();
                std::copy(values.begin(), values.end(), data + offset);
                data[elements + int64_t(i - begin)] = 1.0f;
            }
            offset += p.numel();
        }
        all_reduce_sum(comm, bucket);
        offset = 0;
        for (size_t i = begin; i < end; ++i) {
            const Tensor& p = parameters[i];
            const int64_t n = p.numel();
            if (data[elements + int64_t(i - begin)] > 0) {
                std::vector<float> values(data + offset, data + offset + n);
                for (float& v : values) v *= scale;
                Tensor mean = from_vector(values, p.shape(), p.device());
                Tensor g = p.grad();
                if (g.defined()) g.copy_(mean);
                else Tensor(p).set_grad(mean);
            }
            offset += n;
        }
        begin = end;
    }
}

}  // namespace strata
