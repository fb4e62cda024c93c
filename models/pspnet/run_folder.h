// Keeping a training run's folder sound: one training at a time per run_dir (a lock), metrics lines that are
// either written completely or reported as an error, stop signals (Ctrl-C, SIGTERM) turned into a checkpoint,
// and the cleanup of partial checkpoint files that a crash or a full disk left behind.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace strata::pspnet {

// An exclusive lock on <run_dir>/train.lock (flock), held while the object lives. A second training on the same
// run_dir, in this process or another, fails with a message that names the folder. The kernel drops the lock when
// the process ends, however it ends, so a killed run never leaves a stale lock behind.
struct RunFolderLock {
    explicit RunFolderLock(const std::string& run_dir);
    ~RunFolderLock();
    RunFolderLock(const RunFolderLock&) = delete;
    RunFolderLock& operator=(const RunFolderLock&) = delete;

    int fd = -1;
};

// Appends lines to a metrics.jsonl. Every line is written and flushed to the file before append() returns; a
// failed write (a full disk, a quota) is an Error naming the file and the system's reason, never a lost or
// half-written line that goes unnoticed.
struct MetricsLog {
    explicit MetricsLog(const std::string& path);  // opens for appending (creates the file)
    ~MetricsLog();
    MetricsLog(const MetricsLog&) = delete;
    MetricsLog& operator=(const MetricsLog&) = delete;

    void append(const std::string& line);  // `line` without its newline

    std::string path;
    std::FILE* file = nullptr;
};

// Ctrl-C (SIGINT) and SIGTERM (what `kill`, container runtimes and job schedulers send) ask the training loop to
// stop after the current iteration with a checkpoint. The handlers are installed while the object lives and the
// previous ones restored afterwards. A second signal of the same kind ends the process at once (the default
// action), so a run that hangs can still be stopped; the atomic writes keep the previous checkpoint intact.
struct StopSignals {
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    // The signal that asked to stop (SIGINT or SIGTERM), or 0.
    static int received();
};

// The shell's convention for a process stopped by a signal: 128 + the signal number (130 for SIGINT, 143 for
// SIGTERM).
int exit_code_for_signal(int signal);
// "SIGINT (Ctrl-C)", "SIGTERM", ...
std::string signal_name(int signal);

// Removes what an interrupted save left in <run_dir>/checkpoints: temporary files (*.tmp) and the files of a
// checkpoint whose iter_N.json was never written (a weights file without its optimizer state or metadata).
// Returns the names removed; the caller says so in one line.
std::vector<std::string> remove_partial_checkpoints(const std::string& run_dir);

}  // namespace strata::pspnet
