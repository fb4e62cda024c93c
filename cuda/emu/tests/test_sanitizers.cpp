// The sanitizer builds catch what the emulator alone cannot: each case runs a deliberately broken kernel from
// bugs/cuemu_bugs.cu in its sanitizer build, as a child process, and expects the sanitizer's report naming the
// kernel; the correct twin must run clean. The children are built next to this test program (cuda/cuda.mk).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

struct ChildRun {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

// Runs <this program's directory>/<program> <scenario>.
ChildRun run_child(const std::string& program, const std::string& scenario) {
    std::filesystem::path dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
    std::filesystem::path exe = dir / program;
    ChildRun run;
    if (!std::filesystem::exists(exe)) {
        run.output = exe.string() + " does not exist (make builds it with the CUDA test programs)";
        return run;
    }
    std::string command = exe.string() + " " + scenario + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) run.output.append(buf, n);
    int status = pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

bool has(const ChildRun& run, const std::string& text) {
    return run.output.find(text) != std::string::npos;
}

void expect_clean(const std::string& program, const std::string& scenario) {
    ChildRun run = run_child(program, scenario);
    INFO(program, " ", scenario, ":\n", run.output);
    CHECK(run.exit_code == 0);
    CHECK(has(run, scenario + ": result right"));
    CHECK_FALSE(has(run, "ThreadSanitizer"));
    CHECK_FALSE(has(run, "ERROR: AddressSanitizer"));
    CHECK_FALSE(has(run, "runtime error"));
}

}  // namespace

TEST_CASE("cuemu sanitizers: TSan reports a missing __syncthreads as a data race on the shared tiles") {
    expect_clean("cuemu_bugs_tsan", "gemm");
    ChildRun run = run_child("cuemu_bugs_tsan", "gemm_missing_sync");
    INFO(run.output);
    CHECK(run.exit_code != 0);
    CHECK(has(run, "WARNING: ThreadSanitizer: data race"));
    CHECK(has(run, "in gemm_missing_sync"));
    CHECK(has(run, "gemm_missing_sync(float*, float const*, float const*, int, int, int)::a_tile"));
}

TEST_CASE("cuemu sanitizers: TSan reports a non-atomic shared histogram and a warp reduction without __syncwarp") {
    expect_clean("cuemu_bugs_tsan", "histogram");
    ChildRun plus_plus = run_child("cuemu_bugs_tsan", "histogram_plus_plus");
    INFO(plus_plus.output);
    CHECK(has(plus_plus, "WARNING: ThreadSanitizer: data race"));
    CHECK(has(plus_plus, "histogram_plus_plus(unsigned int*, unsigned char const*, int)::local"));
    CHECK(has(plus_plus, "histogram_plus_plus: result right"));  // the plain emulated run cannot see this bug
    ChildRun warp = run_child("cuemu_bugs_tsan", "warp_reduce_no_syncwarp");
    INFO(warp.output);
    CHECK(has(warp, "WARNING: ThreadSanitizer: data race"));
    CHECK(has(warp, "in warp_reduce_no_syncwarp"));
}

TEST_CASE("cuemu sanitizers: ASan and UBSan report out-of-bounds kernel accesses") {
    expect_clean("cuemu_bugs_asan", "gemm");
    expect_clean("cuemu_bugs_asan", "histogram");
    ChildRun global = run_child("cuemu_bugs_asan", "scale_unguarded");
    INFO(global.output);
    CHECK(global.exit_code != 0);
    CHECK(has(global, "ERROR: AddressSanitizer: heap-buffer-overflow"));
    CHECK(has(global, "in scale_unguarded"));
    ChildRun dynamic = run_child("cuemu_bugs_asan", "dynamic_shared_too_small");
    INFO(dynamic.output);
    CHECK(has(dynamic, "ERROR: AddressSanitizer: heap-buffer-overflow"));
    CHECK(has(dynamic, "in dynamic_shared_too_small"));
    // A static __shared__ array: UBSan sees the constant bound first (ASan would report a global-buffer-overflow).
    ChildRun shared = run_child("cuemu_bugs_asan", "shared_off_by_one");
    INFO(shared.output);
    CHECK(shared.exit_code != 0);
    CHECK(has(shared, "cuemu_bugs.cu"));
    CHECK((has(shared, "index 32 out of bounds for type 'float [32]'") || has(shared, "global-buffer-overflow")));
}
