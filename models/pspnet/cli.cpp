// Command-line parsing for the PSPNet programs (see cli.h).
#include "models/pspnet/cli.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "framework/check.h"

namespace strata::pspnet {

CommandLine parse_command_line(int argc, char** argv, const std::set<std::string>& flags,
                               const std::set<std::string>& options, const std::string& usage) {
    CommandLine cl;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << usage;
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
    return cl;
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
    } catch (const Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace strata::pspnet
