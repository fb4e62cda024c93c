// The SIMT scheduler: launches, blocks, GPU threads as fibers, barriers, warp operations, and the reports.
//
// A launch runs its blocks one at a time. For a block, every GPU thread gets a fiber (stacks are pooled across
// launches) and starts Ready. The scheduler works in rounds: it takes the Ready threads, orders them
// (CUEMU_ORDER: by thread index, reversed, or shuffled with a seed per launch and block) and resumes each until it
// blocks or exits. A thread blocks in exactly two ways:
//   - at a barrier (__syncthreads and its _count/_and/_or variants). The barrier completes when every thread of
//     the block has arrived or exited (exited threads count as arrived). In strict mode all threads of one barrier
//     phase must arrive at the same source line; a thread arriving elsewhere is reported, naming both lines.
//   - in a warp operation (shuffle, vote, match, reduce, __syncwarp). A warp operation with mask M completes when
//     every lane of M that exists and has not exited has joined an operation with the same mask M (PTX's rule for
//     shfl.sync). Lanes that join with the same mask form one pending group per warp; when a lane exits, groups
//     waiting for it stop waiting. On completion each member's result is computed (the source lane of a shuffle
//     must be a member: reading a lane outside the mask, or an exited or missing one, is reported).
// Completing a barrier or a group makes its threads Ready for the next round. If no thread is Ready but some have
// not exited, the block is deadlocked: the report lists who waits where, the block is abandoned and the launch
// fails.
//
// ThreadSanitizer (CUEMU_TSAN). This file is compiled without instrumentation in the TSan build, and what its
// bookkeeping does through intercepted C library calls (malloc, memmove, ...) runs inside a TsanIgnoreScope, so
// the scheduler is invisible to TSan; fiber switches create no happens-before edge (fiber.cpp). The CUDA-level
// edges are published explicitly with sync tokens:
//   - every barrier instance and every warp group gets a fresh token: each thread releases it on arrival and
//     acquires it when resumed, after which the token is freed (freeing forgets its clock, so a later instance
//     never inherits an earlier one's edges). A missing __syncthreads is therefore a race whatever the schedule;
//   - the host releases a block-start token before each block, which every fiber acquires when it starts, and
//     every fiber releases a block-end token when it exits, which the host acquires after the block: host writes
//     before a launch are ordered before the kernel, the kernel's writes before what the host does next, and
//     consecutive blocks are chained (they share the static __shared__ variables);
//   - after a deadlock, the host releases the block-end token on behalf of the abandoned fibers.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "cuda/emu/fiber.h"
#include "cuda/emu/internal.h"
#include "cuda/emu/kernel_api.h"

namespace cuemu {

// ---- settings ----

namespace {

const char* env(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? v : nullptr;
}

Settings settings_from_environment() {
    Settings s;
    if (const char* v = env("CUEMU_ORDER")) {
        std::string order = v;
        if (order == "forward") s.order = Order::Forward;
        else if (order == "reverse") s.order = Order::Reverse;
        else if (order == "random") s.order = Order::Random;
        else std::fprintf(stderr, "cuemu: CUEMU_ORDER=%s is not forward, reverse or random; using forward\n", v);
    }
    if (const char* v = env("CUEMU_SEED")) s.seed = std::strtoull(v, nullptr, 10);
    if (const char* v = env("CUEMU_STRICT")) s.strict = std::string(v) != "0";
    if (const char* v = env("CUEMU_STACK")) s.stack_bytes = std::max<size_t>(16 * 1024, std::strtoull(v, nullptr, 10));
    if (const char* v = env("CUEMU_POISON")) s.poison = std::string(v) != "0";
    if (const char* v = env("CUEMU_DEVICES")) s.devices = std::max(0, std::atoi(v));
    return s;
}

}  // namespace

Settings& settings() {
    static Settings s = settings_from_environment();
    return s;
}

const char* order_name(Order order) {
    switch (order) {
        case Order::Forward: return "forward";
        case Order::Reverse: return "reverse";
        case Order::Random: return "random";
    }
    return "?";
}

// ---- reports ----
//
// Guarded by a spin lock rather than a mutex: under TSan a mutex taken by two fibers would order them and could
// hide the very race a test is looking for (this file is not instrumented, so the spin lock is invisible).

namespace {

struct ReportLog {
    std::atomic_flag lock = ATOMIC_FLAG_INIT;
    std::vector<std::string> messages;
    int errors = 0;
    int warnings = 0;
    int capture_depth = 0;
    int uncaptured_errors = 0;  // errors no CaptureReports expected: the process fails at exit
};

ReportLog& report_log() {
    static ReportLog* log = new ReportLog();  // never destroyed: reports may come during static destruction
    return *log;
}

struct LogLock {
    ReportLog& log;
    explicit LogLock(ReportLog& l) : log(l) {
        while (log.lock.test_and_set(std::memory_order_acquire)) {
        }
    }
    ~LogLock() { log.lock.clear(std::memory_order_release); }
};

Stats g_stats;

}  // namespace

int error_count() {
    ReportLog& log = report_log();
    LogLock lock(log);
    return log.errors;
}

int warning_count() {
    ReportLog& log = report_log();
    LogLock lock(log);
    return log.warnings;
}

std::vector<std::string> reports() {
    ReportLog& log = report_log();
    LogLock lock(log);
    return log.messages;
}

void clear_reports() {
    ReportLog& log = report_log();
    LogLock lock(log);
    log.messages.clear();
    log.errors = 0;
    log.warnings = 0;
}

CaptureReports::CaptureReports() {
    clear_reports();
    ReportLog& log = report_log();
    LogLock lock(log);
    ++log.capture_depth;
}

CaptureReports::~CaptureReports() {
    {
        ReportLog& log = report_log();
        LogLock lock(log);
        --log.capture_depth;
    }
    clear_reports();
}

bool CaptureReports::contains(const std::string& text) const {
    for (const std::string& m : reports())
        if (m.find(text) != std::string::npos) return true;
    return false;
}

std::string CaptureReports::all() const {
    std::string out;
    for (const std::string& m : reports()) out += m + "\n";
    return out;
}

Stats stats() {
    return g_stats;
}

}  // namespace cuemu

namespace cuemu::detail {

const Coords* g_coords = nullptr;

// An error that no test captured must not go unnoticed even if the test itself passed (the kernel may have
// produced the right numbers by luck of the thread order): the process then exits with status 3.
void fail_at_exit_if_uncaptured_errors() {
    ReportLog& log = report_log();
    if (log.uncaptured_errors == 0) return;
    std::fprintf(stderr, "cuemu: %d emulator error(s) were reported outside any CaptureReports: failing\n",
                 log.uncaptured_errors);
    std::fflush(stderr);
    std::_Exit(3);
}

void report(Severity severity, const std::string& message) {
    std::string line = std::string(severity == Severity::Error ? "cuemu error: " : "cuemu warning: ") + message;
    ReportLog& log = report_log();
    LogLock lock(log);
    log.messages.push_back(line);
    if (severity == Severity::Error) ++log.errors;
    else ++log.warnings;
    if (log.capture_depth == 0) {
        std::fprintf(stderr, "%s\n", line.c_str());
        if (severity == Severity::Error && log.uncaptured_errors++ == 0) std::atexit(fail_at_exit_if_uncaptured_errors);
    }
}

std::string location(const std::source_location& where) {
    return std::string(where.file_name()) + ":" + std::to_string(where.line());
}

void report_host(Severity severity, const std::source_location& where, const std::string& message) {
    report(severity, location(where) + ": host: " + message);
}

std::string hex(uint64_t value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)value);
    return buf;
}

namespace {

// ---- the state of the launch and block being run ----

enum class ThreadState { Ready, Running, AtBarrier, AtWarpOp, Exited };

struct Token {
    int refs = 0;  // the threads still to acquire it; the last one frees it
};

struct GpuThread {
    Coords coords;
    Fiber fiber;
    int index = 0;  // linear index in the block (x fastest)
    int warp = 0, lane = 0;
    ThreadState state = ThreadState::Ready;
    std::source_location where;  // where it waits
    const char* op = "";         // what it waits in
    // barrier
    BarrierKind barrier_kind = BarrierKind::Plain;
    int predicate = 0;
    int barrier_result = 0;
    // warp operation
    WarpRequest request{};
    WarpResult result{};
    uint64_t gathered[32] = {};
    Token* wake_token = nullptr;  // TSan: acquired when resumed
};

struct WarpGroup {
    unsigned mask = 0;
    unsigned members = 0;
    Token* token = nullptr;
};

struct WarpState {
    unsigned existing = 0;  // lanes the block has (a partial last warp has fewer than 32)
    unsigned exited = 0;
    std::vector<WarpGroup> pending;
};

struct BlockState {
    uint3 index{};
    int nthreads = 0;
    int exited = 0;
    // the barrier phase in progress
    int arrived = 0;
    GpuThread* first_arrival = nullptr;
    bool divergence_reported = false;
    Token* barrier_token = nullptr;
    std::vector<WarpState> warps;
    std::vector<int> ready;
};

struct LaunchState {
    const LaunchInfo* info = nullptr;
    uint64_t number = 0;
    unsigned char* dynamic_shared = nullptr;
    bool failed = false;
    bool exited_barrier_warned = false;
    int thread_reports = 0;  // reports from GPU threads; after kMaxThreadReports the rest are only counted
    HostContext host;
};

std::mutex g_launch_mutex;                       // one launch at a time in the whole process
thread_local bool t_in_launch = false;           // this host thread is running a launch
std::vector<std::unique_ptr<GpuThread>> g_pool;  // fibers, reused across launches
size_t g_pool_stack_bytes = 0;
LaunchState* g_launch = nullptr;
BlockState* g_block = nullptr;
GpuThread* g_current = nullptr;
char g_block_start_token, g_block_end_token;
uint64_t g_launch_counter = 0;

Token* new_token() {
    return new Token();
}

// After being resumed from a barrier or warp operation: take the happens-before edge the token carries.
void acquire_wake_token(GpuThread* t) {
    Token* token = t->wake_token;
    t->wake_token = nullptr;
    if (!token) return;
    tsan_acquire(token);
    if (--token->refs == 0) delete token;
}

std::string xyz(uint3 v) {
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// "kernel k, block (x,y,z)" for the current launch
std::string kernel_and_block() {
    return std::string("kernel ") + g_launch->info->kernel_name + ", block " + xyz(g_block->index);
}

// "launched at file:line" location of the current launch, for reports about a whole block
std::string launch_site() {
    return std::string(g_launch->info->file) + ":" + std::to_string(g_launch->info->line);
}

constexpr int kMaxThreadReports = 20;

void report_thread(Severity severity, const GpuThread* t, const std::source_location& where, const std::string& what) {
    if (severity == Severity::Error) g_launch->failed = true;
    int n = ++g_launch->thread_reports;
    if (n > kMaxThreadReports) {
        {
            ReportLog& log = report_log();
            LogLock lock(log);
            if (severity == Severity::Error) ++log.errors;
            else ++log.warnings;
        }
        if (n == kMaxThreadReports + 1)
            report(Severity::Warning, launch_site() + ": kernel " + g_launch->info->kernel_name + ": more than " +
                                          std::to_string(kMaxThreadReports) +
                                          " reports in this launch; the rest are counted but not shown");
        return;
    }
    report(severity,
           location(where) + ": " + kernel_and_block() + ", thread " + xyz(t->coords.thread_idx) + ": " + what);
}

bool same_place(const std::source_location& a, const std::source_location& b) {
    return a.line() == b.line() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

// "0-31, 40, 42-47"
std::string ranges(const std::vector<int>& ids) {
    std::string out;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
        if (!out.empty()) out += ", ";
        out += std::to_string(ids[i]);
        if (j > i) out += "-" + std::to_string(ids[j]);
        i = j + 1;
    }
    return out;
}

std::vector<int> lanes_of(unsigned mask) {
    std::vector<int> lanes;
    for (int l = 0; l < 32; ++l)
        if (mask >> l & 1u) lanes.push_back(l);
    return lanes;
}

void make_ready(GpuThread* t, Token* token) {
    t->state = ThreadState::Ready;
    t->wake_token = token;
    g_block->ready.push_back(t->index);
}

GpuThread* thread_at(int index) {
    return g_pool[size_t(index)].get();
}

// ---- barriers ----

void try_complete_barrier() {
    BlockState& b = *g_block;
    if (b.arrived == 0 || b.arrived + b.exited < b.nthreads) return;
    int count = 0;
    for (int i = 0; i < b.nthreads; ++i) {
        GpuThread* t = thread_at(i);
        if (t->state == ThreadState::AtBarrier && t->predicate) ++count;
    }
    if (b.exited > 0 && !g_launch->exited_barrier_warned) {
        g_launch->exited_barrier_warned = true;
        report(Severity::Warning, location(b.first_arrival->where) + ": " + kernel_and_block() +
                                      ": __syncthreads completed with " + std::to_string(b.exited) +
                                      " thread(s) of the block already exited (they count as arrived; CUDA only "
                                      "defines a barrier that every thread of the block reaches)");
    }
    Token* token = b.barrier_token;
    token->refs = b.arrived;
    for (int i = 0; i < b.nthreads; ++i) {
        GpuThread* t = thread_at(i);
        if (t->state != ThreadState::AtBarrier) continue;
        switch (t->barrier_kind) {
            case BarrierKind::Plain: t->barrier_result = 0; break;
            case BarrierKind::Count: t->barrier_result = count; break;
            case BarrierKind::And: t->barrier_result = count == b.arrived; break;
            case BarrierKind::Or: t->barrier_result = count > 0; break;
        }
        make_ready(t, token);
    }
    b.arrived = 0;
    b.first_arrival = nullptr;
    b.divergence_reported = false;
    b.barrier_token = nullptr;
}

// ---- warp operations ----

// Completes group `g` of warp `w` if every lane it waits for has joined or exited.
bool try_complete_group(WarpState& w, int warp_index, size_t g) {
    WarpGroup group = w.pending[g];
    unsigned needed = group.mask & w.existing & ~w.exited;
    if ((group.members & needed) != needed) return false;
    w.pending.erase(w.pending.begin() + long(g));

    GpuThread* lanes[32] = {};
    for (int l = 0; l < 32; ++l)
        if (group.members >> l & 1u) lanes[l] = thread_at(warp_index * 32 + l);
    GpuThread* first = nullptr;
    for (int l = 0; l < 32 && !first; ++l) first = lanes[l];

    // All members must be in the same kind of operation.
    for (int l = 0; l < 32; ++l) {
        GpuThread* t = lanes[l];
        if (t && std::strcmp(t->request.name, first->request.name) != 0) {
            report_thread(Severity::Error, t, t->where,
                          std::string("lanes of warp ") + std::to_string(warp_index) + " with mask " + hex(group.mask) +
                              " met in different warp operations: this lane (" + std::to_string(l) + ") is in " +
                              t->request.name + ", lane " + std::to_string(first->lane) + " is in " +
                              first->request.name + " at " + location(first->where));
            break;
        }
    }

    // Shuffles: each lane receives its source lane's value, which must be a member.
    bool bad_source_reported = false;
    for (int l = 0; l < 32; ++l) {
        GpuThread* t = lanes[l];
        if (!t) continue;
        int src = t->request.src_lane;
        uint64_t value = t->request.value;
        if (src != l) {
            if (src >= 0 && src < 32 && (group.members >> src & 1u)) {
                value = lanes[src]->request.value;
            } else if (!bad_source_reported) {
                bad_source_reported = true;
                std::string why;
                if (!(group.mask >> src & 1u))
                    why = "which is outside the mask " + hex(group.mask);
                else if (!(w.existing >> src & 1u))
                    why = "which does not exist (the block has " + std::to_string(g_block->nthreads) + " threads)";
                else
                    why = "which has exited";
                report_thread(Severity::Error, t, t->where,
                              std::string(t->request.name) + ": lane " + std::to_string(l) + " reads lane " +
                                  std::to_string(src) + ", " + why + " (the value is undefined on a GPU)");
            }
        }
        t->result.value = value;
        t->result.members = group.members;
        t->result.values = t->gathered;
        if (t->request.gather)
            for (int s = 0; s < 32; ++s) t->gathered[s] = lanes[s] ? lanes[s]->request.value : 0;
    }

    group.token->refs = __builtin_popcount(group.members);
    for (int l = 0; l < 32; ++l)
        if (lanes[l]) make_ready(lanes[l], group.token);
    return true;
}

void try_complete_groups(WarpState& w, int warp_index) {
    for (size_t g = 0; g < w.pending.size();) {
        if (!try_complete_group(w, warp_index, g)) ++g;
    }
}

// ---- the GPU thread's side ----

// Blocks the current GPU thread until the scheduler resumes it.
void wait_here(GpuThread* t) {
    fiber_yield(g_launch->host, t->fiber, false);
    TsanIgnoreScope ignore;
    acquire_wake_token(t);
}

void thread_exited(GpuThread* t) {
    BlockState& b = *g_block;
    t->state = ThreadState::Exited;
    ++b.exited;
    WarpState& w = b.warps[size_t(t->warp)];
    w.exited |= 1u << t->lane;
    try_complete_groups(w, t->warp);
    try_complete_barrier();
}

void thread_entry() {
    GpuThread* t = g_current;
    fiber_started(g_launch->host, t->fiber);
    tsan_acquire(&g_block_start_token);
    std::string exception;
    try {
        g_launch->info->run(g_launch->info->context);
    } catch (const std::exception& e) {
        exception = std::string(": ") + e.what();
    } catch (...) {
        exception = " of an unknown type";
    }
    {
        TsanIgnoreScope ignore;
        if (!exception.empty())
            report_thread(Severity::Error, t, std::source_location::current(),
                          "the kernel threw an exception" + exception + " (kernels cannot throw on a GPU)");
        thread_exited(t);
    }
    tsan_release(&g_block_end_token);
    fiber_yield(g_launch->host, t->fiber, true);
    std::abort();  // an exited fiber is never resumed
}

// ---- the scheduler's side ----

void report_deadlock() {
    BlockState& b = *g_block;
    std::string msg = launch_site() + ": " + kernel_and_block() + ": deadlock: no thread can proceed";
    // Group the waiting threads by what and where they wait.
    struct Waiters {
        const char* op;
        std::source_location where;
        unsigned mask;
        std::vector<int> threads;
    };
    std::vector<Waiters> groups;
    for (int i = 0; i < b.nthreads; ++i) {
        GpuThread* t = thread_at(i);
        if (t->state != ThreadState::AtBarrier && t->state != ThreadState::AtWarpOp) continue;
        unsigned mask = t->state == ThreadState::AtWarpOp ? t->request.mask : 0;
        auto it = std::find_if(groups.begin(), groups.end(), [&](const Waiters& g) {
            return g.op == t->op && g.mask == mask && same_place(g.where, t->where);
        });
        if (it == groups.end()) groups.push_back({t->op, t->where, mask, {}}), it = groups.end() - 1;
        it->threads.push_back(i);
    }
    for (const Waiters& g : groups) {
        msg += "\n    " + std::to_string(g.threads.size()) + " thread(s) wait in " + g.op;
        if (std::strcmp(g.op, "__syncthreads") != 0) msg += " with mask " + hex(g.mask);
        msg += " at " + location(g.where) + ": threads " + ranges(g.threads);
    }
    // What each pending warp group still waits for.
    for (size_t wi = 0; wi < b.warps.size(); ++wi) {
        const WarpState& w = b.warps[wi];
        for (const WarpGroup& g : w.pending) {
            unsigned missing = g.mask & w.existing & ~w.exited & ~g.members;
            msg += "\n    warp " + std::to_string(wi) + ", mask " + hex(g.mask) + ": waits for lane(s) " +
                   ranges(lanes_of(missing));
            for (const WarpGroup& other : w.pending) {
                if (&other != &g && (other.members & missing)) {
                    msg += ", which wait in a warp operation with mask " + hex(other.mask) +
                           " (a warp operation only completes when every lane of its mask uses the same mask)";
                    break;
                }
            }
        }
    }
    if (b.arrived > 0) {
        std::vector<int> elsewhere;
        for (int i = 0; i < b.nthreads; ++i) {
            ThreadState s = thread_at(i)->state;
            if (s != ThreadState::AtBarrier && s != ThreadState::Exited) elsewhere.push_back(i);
        }
        msg += "\n    the __syncthreads waits for thread(s) " + ranges(elsewhere);
    }
    report(Severity::Error, msg);
    g_launch->failed = true;
}

void order_round(std::vector<int>& round, std::mt19937_64& rng) {
    switch (settings().order) {
        case Order::Forward: std::sort(round.begin(), round.end()); break;
        case Order::Reverse: std::sort(round.rbegin(), round.rend()); break;
        case Order::Random: std::shuffle(round.begin(), round.end(), rng); break;
    }
}

// After a deadlock: the waiting threads will never run again. Their sync tokens are freed, their fibers are reset
// on next use, and TSan is told that what they did happened before what the host does next (as if they had
// exited), so that the host freeing their buffers or reusing their stacks is not reported as a race.
void abandon_block(BlockState& b) {
    for (int i = 0; i < b.nthreads; ++i) {
        GpuThread* t = thread_at(i);
        if (t->state == ThreadState::Exited) continue;
        tsan_release_for(g_launch->host, t->fiber, &g_block_end_token);
        t->fiber.abandoned = true;
    }
    delete b.barrier_token;
    b.barrier_token = nullptr;
    for (WarpState& w : b.warps) {
        for (WarpGroup& g : w.pending) delete g.token;
        w.pending.clear();
    }
}

// Runs one block to completion; returns false if it deadlocked.
bool run_block(uint3 block_index, const dim3& grid, const dim3& block_dim) {
    LaunchState& launch = *g_launch;
    BlockState b;
    b.index = block_index;
    b.nthreads = int(block_dim.x * block_dim.y * block_dim.z);
    b.warps.resize(size_t((b.nthreads + 31) / 32));
    for (int i = 0; i < b.nthreads; ++i) {
        GpuThread* t = thread_at(i);
        t->index = i;
        t->warp = i / 32;
        t->lane = i % 32;
        t->coords.thread_idx = uint3{unsigned(i) % block_dim.x, unsigned(i) / block_dim.x % block_dim.y,
                                     unsigned(i) / (block_dim.x * block_dim.y)};
        t->coords.block_idx = block_index;
        t->coords.block_dim = block_dim;
        t->coords.grid_dim = grid;
        t->state = ThreadState::Ready;
        t->wake_token = nullptr;
        fiber_reset(t->fiber, thread_entry);
        b.warps[size_t(t->warp)].existing |= 1u << t->lane;
        b.ready.push_back(i);
    }
    g_block = &b;
    if (launch.dynamic_shared && settings().poison) std::memset(launch.dynamic_shared, 0xFF, launch.info->smem_bytes);

    uint64_t block_linear = block_index.x + uint64_t(grid.x) * (block_index.y + uint64_t(grid.y) * block_index.z);
    std::mt19937_64 rng(settings().seed * 0x9E3779B97F4A7C15ull ^ (launch.number << 32) ^ block_linear);

    tsan_release(&g_block_start_token);
    bool deadlocked = false;
    std::vector<int> round;
    while (b.exited < b.nthreads) {
        if (b.ready.empty()) {
            report_deadlock();
            abandon_block(b);
            deadlocked = true;
            break;
        }
        round.swap(b.ready);
        b.ready.clear();
        order_round(round, rng);
        for (int i : round) {
            GpuThread* t = thread_at(i);
            t->state = ThreadState::Running;
            g_current = t;
            g_coords = &t->coords;
            fiber_resume(launch.host, t->fiber);
            ++g_stats.switches;
        }
        round.clear();
    }
    g_current = nullptr;
    g_coords = nullptr;
    g_block = nullptr;
    tsan_acquire(&g_block_end_token);
    ++g_stats.blocks;
    g_stats.threads += uint64_t(b.nthreads);
    return !deadlocked;
}

void ensure_pool(size_t nthreads) {
    size_t stack_bytes = settings().stack_bytes;
    if (stack_bytes != g_pool_stack_bytes) {
        for (auto& t : g_pool) fiber_destroy(t->fiber);
        g_pool.clear();
        g_pool_stack_bytes = stack_bytes;
    }
    while (g_pool.size() < nthreads) {
        auto t = std::make_unique<GpuThread>();
        fiber_create(t->fiber, stack_bytes);
        g_pool.push_back(std::move(t));
    }
}

// Checks the launch configuration as a GPU would; reports and returns the error if it is invalid.
cudaError_t check_configuration(const LaunchInfo& info) {
    auto fail = [&](cudaError_t error, const std::string& what) {
        report(Severity::Error, std::string(info.file) + ":" + std::to_string(info.line) + ": launch of kernel " +
                                    info.kernel_name + ": " + what);
        return error;
    };
    const dim3& g = info.grid;
    const dim3& b = info.block;
    std::string dims = "grid " + xyz(uint3(g)) + ", block " + xyz(uint3(b));
    if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0)
        return fail(cudaErrorInvalidConfiguration,
                    "invalid configuration (" + dims + "): every dimension must be >= 1");
    if (b.x > 1024 || b.y > 1024 || b.z > 64)
        return fail(cudaErrorInvalidConfiguration,
                    "invalid configuration (" + dims + "): block dimensions are limited to (1024, 1024, 64)");
    if (uint64_t(b.x) * b.y * b.z > 1024)
        return fail(cudaErrorInvalidConfiguration,
                    "invalid configuration (" + dims + "): " + std::to_string(uint64_t(b.x) * b.y * b.z) +
                        " threads per block; at most 1024");
    if (g.x > 2147483647u || g.y > 65535 || g.z > 65535)
        return fail(cudaErrorInvalidConfiguration,
                    "invalid configuration (" + dims + "): grid dimensions are limited to (2^31-1, 65535, 65535)");
    if (info.smem_bytes > 227 * 1024)
        return fail(cudaErrorInvalidValue, std::to_string(info.smem_bytes) +
                                               " bytes of dynamic shared memory; a block can have at most 227 KiB");
    if (info.smem_bytes > size_t(max_dynamic_shared(info.kernel_id)))
        report(Severity::Warning, std::string(info.file) + ":" + std::to_string(info.line) + ": launch of kernel " +
                                      info.kernel_name + ": " + std::to_string(info.smem_bytes) +
                                      " bytes of dynamic shared memory; above 48 KiB a GPU needs cudaFuncSetAttribute("
                                      "kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first");
    if (!is_valid_stream(info.stream))
        return fail(cudaErrorInvalidResourceHandle, "the stream is not one cudaStreamCreate returned");
    // Devices: a kernel runs on the current device, so its stream and the device memory it is given must be that
    // device's (all emulated devices share host memory, so without this check a kernel given another device's
    // memory would work here and fail on GPUs without peer access, or run on the wrong GPU's stream).
    const int device = current_device();
    if (device_of_stream(info.stream) != device)
        return fail(cudaErrorInvalidResourceHandle, "the stream belongs to device " +
                                                        std::to_string(device_of_stream(info.stream)) +
                                                        ", but the current device is " + std::to_string(device) +
                                                        " (cudaSetDevice first)");
    for (int i = 0; i < info.num_pointers; ++i) {
        int owner = device_of_pointer(info.pointers[i]);
        if (owner >= 0 && owner != device)
            return fail(cudaErrorInvalidValue, "pointer argument " + hex(uint64_t(uintptr_t(info.pointers[i]))) +
                                                   " is memory of device " + std::to_string(owner) +
                                                   ", but the kernel runs on device " + std::to_string(device) +
                                                   " (the current device: cudaSetDevice first)");
    }
    return cudaSuccess;
}

// The bookkeeping of a thread's arrival at a barrier or warp operation (called with TSan ignoring it).

void arrive_at_barrier(GpuThread* t, BarrierKind kind, int predicate, const std::source_location& where) {
    BlockState& b = *g_block;
    t->state = ThreadState::AtBarrier;
    t->where = where;
    t->op = "__syncthreads";
    t->barrier_kind = kind;
    t->predicate = predicate != 0;
    if (b.arrived == 0) {
        b.first_arrival = t;
        b.barrier_token = new_token();
    } else if (settings().strict && !b.divergence_reported && !same_place(where, b.first_arrival->where)) {
        b.divergence_reported = true;
        report_thread(Severity::Error, t, where,
                      "divergent __syncthreads: this thread is at " + location(where) + " while " +
                          std::to_string(b.arrived) + " thread(s) wait at " + location(b.first_arrival->where) +
                          " (first: thread " + xyz(b.first_arrival->coords.thread_idx) +
                          "); all threads of a block must reach the same __syncthreads");
    }
    tsan_release(b.barrier_token);
    ++b.arrived;
    try_complete_barrier();
}

void join_warp_op(GpuThread* t, const WarpRequest& request, const std::source_location& where) {
    if (!(request.mask >> t->lane & 1u))
        report_thread(Severity::Error, t, where,
                      std::string(request.name) + ": the calling lane " + std::to_string(t->lane) +
                          " is not in its own mask " + hex(request.mask));
    int w = request.width;
    if (w < 1 || w > 32 || (w & (w - 1)) != 0)
        report_thread(Severity::Error, t, where,
                      std::string(request.name) + ": width " + std::to_string(w) +
                          " must be a power of two from 1 to 32 (32 was used)");
    WarpState& warp = g_block->warps[size_t(t->warp)];
    t->state = ThreadState::AtWarpOp;
    t->where = where;
    t->op = request.name;
    t->request = request;
    size_t g = 0;
    while (g < warp.pending.size() && warp.pending[g].mask != request.mask) ++g;
    if (g == warp.pending.size()) warp.pending.push_back({request.mask, 0, new_token()});
    tsan_release(warp.pending[g].token);
    warp.pending[g].members |= 1u << t->lane;
    try_complete_group(warp, t->warp, g);
}

}  // namespace

// ---- entry points used by kernel_api.h ----

void launch(const LaunchInfo& info) {
    TsanIgnoreScope ignore;  // the host's side of a launch is all bookkeeping
    if (t_in_launch) {
        report(Severity::Error, std::string(info.file) + ":" + std::to_string(info.line) + ": launch of kernel " +
                                    info.kernel_name + " from inside a kernel (dynamic parallelism is not emulated)");
        set_last_error(cudaErrorLaunchFailure);
        return;
    }
    cudaError_t config = check_configuration(info);
    if (config != cudaSuccess) {
        set_last_error(config);
        return;
    }
    std::lock_guard<std::mutex> lock(g_launch_mutex);
    t_in_launch = true;
    LaunchState launch;
    launch.info = &info;
    launch.number = g_launch_counter++;
    host_prepare(launch.host);
    // Exactly the bytes asked for, so that ASan sees an overflow of dynamic shared memory.
    std::unique_ptr<unsigned char[]> smem(info.smem_bytes ? new unsigned char[info.smem_bytes] : nullptr);
    launch.dynamic_shared = smem.get();
    ensure_pool(size_t(info.block.x) * info.block.y * info.block.z);
    g_launch = &launch;
    ++g_stats.launches;

    const dim3& g = info.grid;
    uint64_t total = uint64_t(g.x) * g.y * g.z, done = 0;
    for (unsigned z = 0; z < g.z; ++z) {
        for (unsigned y = 0; y < g.y; ++y) {
            for (unsigned x = 0; x < g.x; ++x) {
                ++done;
                if (run_block(uint3{x, y, z}, g, info.block)) continue;
                if (done < total)
                    report(Severity::Error, launch_site() + ": kernel " + info.kernel_name + ": the remaining " +
                                                std::to_string(total - done) + " block(s) were not run");
                z = g.z, y = g.y, x = g.x;  // stop the launch
                break;
            }
        }
    }
    g_launch = nullptr;
    t_in_launch = false;
    if (launch.failed) set_launch_failed();
}

int block_barrier(BarrierKind kind, int predicate, const std::source_location& where) {
    GpuThread* t = g_current;
    if (!t) {
        report_host(Severity::Error, where, "__syncthreads called outside a kernel");
        return 0;
    }
    {
        TsanIgnoreScope ignore;
        arrive_at_barrier(t, kind, predicate, where);
    }
    wait_here(t);
    return t->barrier_result;
}

WarpResult warp_op(const WarpRequest& request, const std::source_location& where) {
    GpuThread* t = g_current;
    if (!t) {
        report_host(Severity::Error, where, std::string(request.name) + " called outside a kernel");
        return {request.value, 0, nullptr};
    }
    {
        TsanIgnoreScope ignore;
        join_warp_op(t, request, where);
    }
    wait_here(t);
    return t->result;
}

int lane_id() {
    return g_current ? g_current->lane : 0;
}

unsigned active_mask() {
    if (!g_current) return 0;
    const WarpState& w = g_block->warps[size_t(g_current->warp)];
    return w.existing & ~w.exited;
}

void* dynamic_shared() {
    return g_launch ? g_launch->dynamic_shared : nullptr;
}

}  // namespace cuemu::detail
