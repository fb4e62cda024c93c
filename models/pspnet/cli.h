// The command line shared by the train, eval and infer programs:
//
//     <program> [config.json] [key=value ...] [--flag ...] [--option value ...]
//
// The config file and the key=value overrides form the config (models/pspnet/config.h); flags and options are the
// program's own (--resume, --input, ...). Unknown flags are errors that list the known ones.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata::pspnet {

struct CommandLine {
    std::string config_path;
    std::vector<std::string> overrides;
    std::set<std::string> flags;                  // "--resume"
    std::map<std::string, std::string> options;   // "--input" -> value
};

// flags: names that take no value; options: names that take one. "--help" prints `usage` and exits 0.
CommandLine parse_command_line(int argc, char** argv, const std::set<std::string>& flags,
                               const std::set<std::string>& options, const std::string& usage);

// Runs body and turns a strata::Error into "error: <message>" on stderr and exit code 1. First it restarts the
// program with OMP_WAIT_POLICY=PASSIVE when the variable is unset (see cli.cpp for why).
int run_program(int (*body)(int, char**), int argc, char** argv);

}  // namespace strata::pspnet
