// Error checking for the whole framework.
//
// Every check that can fail because of what a user passed in (a shape, a file, a config key, a label value) uses
// STRATA_CHECK with a message that says what was wrong and, where it helps, how to fix it. A failed check throws
// strata::Error; the programs catch it in main() and print the message, tests assert on it. Errors are never used
// for ordinary control flow.
//
// The message is for the user, so it does not name the source line that threw: Error::where() keeps that
// ("framework/tensor.cpp:120"), and with the environment variable STRATA_DEBUG=1 the message itself ends in
// " (at <file>:<line>)" as well, for bug reports and debugging.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace strata {

struct Error : std::runtime_error {
    explicit Error(const std::string& message, std::string where = "")
        : std::runtime_error(message), where_(std::move(where)) {}
    // "<file>:<line>" of the check that failed; "" for an Error built elsewhere.
    const std::string& where() const { return where_; }

private:
    std::string where_;
};

// True when STRATA_DEBUG is set to anything but "" or "0": error messages then end in " (at <file>:<line>)".
bool debug_errors();

// Concatenates any streamable values into one string: str("got ", 3, " dims") == "got 3 dims".
template <typename... Parts>
std::string str(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

// Throws Error(message) with where() = "<file>:<line>"; the message ends in " (at <file>:<line>)" when
// debug_errors().
[[noreturn]] void fail_at(const char* file, int line, const std::string& message);

}  // namespace strata

// STRATA_CHECK(cond, parts...): if cond is false, throw an Error built from parts.
#define STRATA_CHECK(cond, ...)                                                      \
    do {                                                                             \
        if (!(cond)) ::strata::fail_at(__FILE__, __LINE__, ::strata::str(__VA_ARGS__)); \
    } while (0)

// STRATA_FAIL(parts...): throw unconditionally (for unreachable cases and dispatch misses).
#define STRATA_FAIL(...) ::strata::fail_at(__FILE__, __LINE__, ::strata::str(__VA_ARGS__))
