// Data-parallel helpers on top of the communicator (see data_parallel.h).
#include "framework/data_parallel.h"

#include <algorithm>
#include <chrono>
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

GradientBucketer::GradientBucketer(Communicator& comm, std::vector<Tensor> parameters, int64_t bucket_bytes)
    : comm_(comm), parameters_(std::move(parameters)) {
    STRATA_CHECK(bucket_bytes > 0, "GradientBucketer: bucket_bytes must be > 0, got ", bucket_bytes);
    if (comm_.world_size() == 1) return;
    const int n = int(parameters_.size());
    bucket_of_.assign(size_t(n), 0);
    slot_of_.assign(size_t(n), 0);
    ready_.assign(size_t(n), false);
    for (int i = n - 1; i >= 0; --i) {
        const Tensor& p = parameters_[size_t(i)];
        STRATA_CHECK(p.dtype() == DType::F32, "GradientBucketer: parameter ", i, " is ", dtype_name(p.dtype()),
                     "; gradients are averaged as F32");
        STRATA_CHECK(index_.emplace(p.impl(), i).second, "GradientBucketer: parameter ", i,
                     " is in the list twice; pass each parameter once");
        if (buckets_.empty() || (buckets_.back().elements + p.numel()) * 4 > bucket_bytes)
            buckets_.emplace_back();
        Bucket& b = buckets_.back();
        bucket_of_[size_t(i)] = int(buckets_.size() - 1);
        slot_of_[size_t(i)] = int(b.parameters.size());
        b.parameters.push_back(i);
        b.offsets.push_back(b.elements);
        b.elements += p.numel();
    }
    for (Bucket& b : buckets_) b.buffer = zeros({b.elements + int64_t(b.parameters.size())});
    hook_ = std::make_unique<GradReadyHookGuard>([this](const Tensor& leaf) {
        auto it = index_.find(leaf.impl());
        if (it != index_.end() && !finished_) on_ready(it->second);
    });
}

GradientBucketer::~GradientBucketer() {
    // Destroyed with buckets in flight (the backward threw: the job is ending): the transport may still write into
    // their buffers, so they are kept alive until the process exits.
    static std::vector<Tensor> in_flight_at_exit;
    for (Bucket& b : buckets_)
        if (b.request.pending()) in_flight_at_exit.push_back(b.buffer);
}

std::vector<std::vector<int>> GradientBucketer::bucket_parameters() const {
    std::vector<std::vector<int>> out;
    for (const Bucket& b : buckets_) out.push_back(b.parameters);
    return out;
}

void GradientBucketer::on_ready(int parameter) {
    if (ready_[size_t(parameter)]) return;
    ready_[size_t(parameter)] = true;
    ++num_ready_;
    Bucket& b = buckets_[size_t(bucket_of_[size_t(parameter)])];
    const int slot = slot_of_[size_t(parameter)];
    float* data = b.buffer.f32();
    const Tensor& p = parameters_[size_t(parameter)];
    Tensor g = p.grad();
    if (g.defined()) {
        Tensor host = g.contiguous().to(kCPU);
        std::copy(host.f32(), host.f32() + p.numel(), data + b.offsets[size_t(slot)]);
        data[b.elements + slot] = 1.0f;
    }
    ++b.ready;
    launch_ready_buckets();
    // the buckets in flight advance only inside the transport's calls
    for (size_t k = 0; k < next_launch_; ++k) comm_.test(buckets_[k].request);
}

void GradientBucketer::launch_ready_buckets() {
    while (next_launch_ < buckets_.size() &&
           buckets_[next_launch_].ready == int(buckets_[next_launch_].parameters.size())) {
        Bucket& b = buckets_[next_launch_++];
        ready_at_launch_.push_back(num_ready_);
        if (!finished_) ++launched_in_backward_;
        b.request = comm_.all_reduce_sum_start(b.buffer.raw(), b.buffer.numel(), CommType::F32, kCPU);
    }
}

void GradientBucketer::finish() {
    STRATA_CHECK(!finished_, "GradientBucketer: finish() called twice; make one bucketer per backward");
    finished_ = true;
    hook_.reset();
    if (comm_.world_size() == 1) return;
    for (int i = 0; i < int(parameters_.size()); ++i) on_ready(i);  // the ones the backward did not reach: zeros
    const auto start = std::chrono::steady_clock::now();
    for (Bucket& b : buckets_) comm_.wait(b.request);
    seconds_waiting_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const float scale = 1.0f / float(comm_.world_size());
    for (Bucket& b : buckets_) {
        const float* data = b.buffer.f32();
        for (size_t j = 0; j < b.parameters.size(); ++j) {
            if (data[b.elements + int64_t(j)] == 0) continue;  // no rank had a gradient
            const Tensor& p = parameters_[size_t(b.parameters[j])];
            std::vector<float> values(data + b.offsets[j], data + b.offsets[j] + p.numel());
            for (float& v : values) v *= scale;
            Tensor mean = from_vector(values, p.shape(), p.device());
            Tensor g = p.grad();
            if (g.defined()) g.copy_(mean);
            else Tensor(p).set_grad(mean);
        }
    }
}

void average_gradients(Communicator& comm, const std::vector<Tensor>& parameters, int64_t bucket_bytes) {
    STRATA_CHECK(bucket_bytes > 0, "average_gradients: bucket_bytes must be > 0, got ", bucket_bytes);
    GradientBucketer buckets(comm, parameters, bucket_bytes);
    buckets.finish();
}

}  // namespace strata
