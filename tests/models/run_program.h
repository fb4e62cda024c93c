// Runs a program of build/bin/ the way a user would, for the tests that check what the programs print and return.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <doctest/doctest.h>

namespace strata::testing {

struct ProgramResult {
    int code;            // the exit status, or -1 when the program did not exit normally (a signal)
    std::string output;  // stdout and stderr together, in the order they were written
};

inline ProgramResult run_program(const std::string& command) {
    std::string full = command + " 2>&1";
    FILE* pipe = popen(full.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
    int status = pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace strata::testing
