// Command-line parsing for the PSPNet programs (see cli.h).
#include "models/pspnet/cli.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "framework/check.h"
#include "framework/communicator.h"
#include "framework/plugin.h"

namespace strata::pspnet {

namespace fs = std::filesystem;

namespace {

// What train leaves in a run folder: its resolved config.json, and weights or checkpoints.
bool is_run_folder(const fs::path& dir) {
    std::error_code ec;
    return fs::is_regular_file(dir / "config.json", ec) &&
           (fs::exists(dir / "model.safetensors", ec) || fs::is_directory(dir / "checkpoints", ec));
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv, const std::set<std::string>& flags,
                               const std::set<std::string>& options, const std::string& usage) {
    CommandLine cl;
    // --list-layers waits for the config: its `plugins` are loaded first, so that they are listed too
    bool list_layers = false;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--list-layers") list_layers = true;
        else argv[kept++] = argv[i];
    }
    argv[kept] = nullptr;
    argc = take_plugin_options(kept, argv);  // --plugin PATH: every program's (framework/plugin.h)
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << usage << "\n--plugin PATH loads a plugin (repeatable), --list-layers lists the registered layers, "
                                   "kernels and plugins (docs/plugins.md)\n"
                      << config_help()
                      << "\nErrors say what was wrong and how to fix it; with STRATA_DEBUG=1 they also name the source "
                         "line that raised them.\n";
            std::exit(0);
        }
        if (a.rfind("--", 0) == 0) {
            if (flags.count(a)) {
                cl.flags.insert(a);
            } else if (options.count(a)) {
                STRATA_CHECK(i + 1 < argc, a, " needs a value");
                cl.options[a] = argv[++i];
            } else {
                std::string known;
                for (const auto& f : flags) known += " " + f;
                for (const auto& o : options) known += " " + o + " <value>";
                STRATA_FAIL("unknown option '", a, "'; known:", known.empty() ? " none" : known, " --help");
            }
        } else if (a.find('=') != std::string::npos) {
            cl.overrides.push_back(a);
        } else {
            STRATA_CHECK(cl.config_path.empty(), "two config files given ('", cl.config_path, "' and '", a,
                         "'); overrides are written key=value\n", usage);
            cl.config_path = a;
        }
    }
    if (list_layers) {
        if (!cl.config_path.empty() || !cl.overrides.empty()) load_program_config(cl);  // loads its plugins
        std::cout << describe_registry();
        std::exit(0);
    }
    return cl;
}

std::string run_folder_of(const CommandLine& cl) {
    if (cl.config_path.empty()) return "";
    fs::path p = fs::path(cl.config_path).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // "runs/x/" -> "runs/x"
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        STRATA_CHECK(fs::is_regular_file(p / "config.json", ec), "'", cl.config_path, "' is a folder without a "
                     "config.json: give a run folder written by train (it saves its config.json there), or a config "
                     "file such as configs/contextscenes.json");
        return p.string();
    }
    fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (p.filename() == "config.json" && is_run_folder(parent)) return parent.string();
    return "";
}

RunConfig load_program_config(const CommandLine& cl) {
    std::string run = run_folder_of(cl);
    // the run's own settings; run_dir follows the folder (the run may have been moved since it was trained)
    RunConfig config = run.empty() ? load_config(cl.config_path, cl.overrides)
                                   : load_config((fs::path(run) / "config.json").string(), cl.overrides,
                                                 {{"run_dir", run}}, "the run folder " + run);
    load_plugins(config.plugins);
    return config;
}

int run_program(int (*body)(int, char**), int argc, char** argv) {
    // OpenMP threads spin while they wait for work (libgomp's default). On a machine where anything else runs, a
    // spinning thread takes the core its partner needs, and a training step measured 10x slower (docs/PERFORMANCE.md).
    // Sleeping waits cost little here, so the programs use them unless the user chose a policy. libgomp reads the
    // setting when the process starts, hence the re-exec with it set.
    if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
    }
    try {
        return body(argc, argv);
    } catch (const std::exception& e) {  // strata::Error and the rest
        // Under mpirun the other ranks may be waiting in a collective for this one: end them all, with one message
        // naming this rank and the error (docs/distributed.md).
        if (launched_by_mpirun() && world_communicator()->world_size() > 1)
            world_communicator()->fail_all_ranks(e.what());
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace strata::pspnet
