// The command line shared by the train, eval and infer programs:
//
//     <program> [config.json | run folder] [key=value ...] [--flag ...] [--option value ...]
//
// The config file and the key=value overrides form the config (models/pspnet/config.h); flags and options are the
// program's own (--resume, --input, ...). Unknown flags are errors that list the known ones. A run folder (what
// train wrote: config.json next to model.safetensors or checkpoints/), or the config.json inside one, stands for
// that run's saved config with run_dir set to the folder, so `eval runs/x` evaluates the run as it was trained.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/pspnet/config.h"

namespace strata::pspnet {

struct CommandLine {
    std::string config_path;
    std::vector<std::string> overrides;
    std::set<std::string> flags;                  // "--resume"
    std::map<std::string, std::string> options;   // "--input" -> value
};

// flags: names that take no value; options: names that take one. "--help" prints `usage`, then every config key
// with its type, default and meaning (config_help()), and exits 0.
CommandLine parse_command_line(int argc, char** argv, const std::set<std::string>& flags,
                               const std::set<std::string>& options, const std::string& usage);

// The run folder the command line names as its config (a folder, or the config.json inside a run folder); ""
// when it names a plain config file or none.
std::string run_folder_of(const CommandLine& cl);

// The config of one program run: defaults <- the config file <- key=value overrides, validated. When the command
// line names a run folder (run_folder_of), the file is the run's config.json and run_dir is that folder, so the
// run's data_root, model and protocol are used unless an override says otherwise.
RunConfig load_program_config(const CommandLine& cl);

// Runs body and turns a strata::Error into "error: <message>" on stderr and exit code 1. First it restarts the
// program with OMP_WAIT_POLICY=PASSIVE when the variable is unset (see cli.cpp for why).
int run_program(int (*body)(int, char**), int argc, char** argv);

}  // namespace strata::pspnet
