// Run-folder hygiene (see run_folder.h): the training lock, checked metrics writes, stop signals and the cleanup
// of partial checkpoints.
#include "models/pspnet/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>

#include "framework/check.h"

namespace strata::pspnet {

namespace fs = std::filesystem;

RunFolderLock::RunFolderLock(const std::string& run_dir) {
    std::string path = (fs::path(run_dir) / "train.lock").string();
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    STRATA_CHECK(fd >= 0, "cannot open the lock file '", path, "' (", std::strerror(errno),
                 "); is run_dir writable?");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(fd);
        fd = -1;
        STRATA_CHECK(err != EWOULDBLOCK, "run_dir '", run_dir, "' is in use by another training (it holds ", path,
                     "); two runs in one folder would overwrite each other's checkpoints and metrics. Wait for it "
                     "to finish or stop it, or choose another run_dir=");
        STRATA_FAIL("cannot lock '", path, "' (", std::strerror(err), ")");
    }
}

RunFolderLock::~RunFolderLock() {
    if (fd >= 0) ::close(fd);  // closing the descriptor releases the flock
}

MetricsLog::MetricsLog(const std::string& p) : path(p) {
    file = std::fopen(path.c_str(), "a");
    STRATA_CHECK(file != nullptr, "cannot open '", path, "' for appending (", std::strerror(errno),
                 "); is run_dir writable?");
}

MetricsLog::~MetricsLog() {
    if (file) std::fclose(file);
}

void MetricsLog::append(const std::string& line) {
    std::string bytes = line + "\n";
    errno = 0;
    size_t written = std::fwrite(bytes.data(), 1, bytes.size(), file);
    // fflush hands the line to the kernel now, so that a write error (ENOSPC, EDQUOT, EIO) shows up at this line
    // and not at some later line or at fclose, where it would go unnoticed.
    bool ok = written == bytes.size() && std::fflush(file) == 0;
    if (!ok) {
        int err = errno;
        std::clearerr(file);
        STRATA_FAIL("writing to '", path, "' failed (", err ? std::strerror(err) : "short write",
                    "); the metrics from this line on are not recorded. Free space there (or fix the folder's "
                    "permissions) and continue with --resume from the newest checkpoint");
    }
}

namespace {
std::atomic<int> g_stop_signal{0};
struct sigaction g_previous_int, g_previous_term;

void on_stop_signal(int signal) { g_stop_signal = signal; }
}  // namespace

StopSignals::StopSignals() {
    g_stop_signal = 0;
    struct sigaction action = {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    // SA_RESETHAND: the handler runs once; a second Ctrl-C or SIGTERM takes the default action and ends the
    // process. SA_RESTART: reads and writes interrupted by the signal are resumed instead of failing with EINTR.
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGINT, &action, &g_previous_int);
    sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignals::~StopSignals() {
    sigaction(SIGINT, &g_previous_int, nullptr);
    sigaction(SIGTERM, &g_previous_term, nullptr);
}

int StopSignals::received() { return g_stop_signal; }

int exit_code_for_signal(int signal) { return 128 + signal; }

std::string signal_name(int signal) {
    if (signal == SIGINT) return "SIGINT (Ctrl-C)";
    if (signal == SIGTERM) return "SIGTERM";
    return "signal " + std::to_string(signal);
}

std::vector<std::string> remove_partial_checkpoints(const std::string& run_dir) {
    fs::path dir = fs::path(run_dir) / "checkpoints";
    std::vector<std::string> removed;
    if (!fs::is_directory(dir)) return removed;
    // the checkpoints whose metadata exists: only those are complete (iter_N.json is written after both tensors
    // files, `latest` after it)
    static const std::regex meta_name(R"(iter_(\d+)\.json)"), tensors_name(R"(iter_(\d+)(\.optim)?\.safetensors)");
    std::set<std::string> complete;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::smatch m;
        std::string name = entry.path().filename().string();
        if (std::regex_match(name, m, meta_name)) complete.insert(m[1].str());
    }
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::smatch m;
        std::string name = entry.path().filename().string();
        bool partial = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0 &&
                       (name.rfind("iter_", 0) == 0 || name == "latest.tmp");
        if (!partial && std::regex_match(name, m, tensors_name)) partial = complete.count(m[1].str()) == 0;
        if (partial) removed.push_back(name);
    }
    std::sort(removed.begin(), removed.end());
    for (const std::string& name : removed) fs::remove(dir / name);
    return removed;
}

}  // namespace strata::pspnet
