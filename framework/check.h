// Error checking for the whole framework.
//
// Every check that can fail because of what a user passed in (a shape, a file, a config key, a label value) uses
// STRATA_CHECK with a message that says what was wrong and, where it helps, how to fix it. A failed check throws
// strata::Error; the programs catch it in main() and print the message, tests assert on it. Errors are never used
// for ordinary control flow.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace strata {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Concatenates any streamable values into one string: str("got ", 3, " dims") == "got 3 dims".
template <typename... Parts>
std::string str(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

// Throws Error("<message> (at <file>:<line>)").
[[noreturn]] void fail_at(const char* file, int line, const std::string& message);

}  // namespace strata

// STRATA_CHECK(cond, parts...): if cond is false, throw an Error built from parts.
#define STRATA_CHECK(cond, ...)                                                      \
    do {                                                                             \
        if (!(cond)) ::strata::fail_at(__FILE__, __LINE__, ::strata::str(__VA_ARGS__)); \
    } while (0)

// STRATA_FAIL(parts...): throw unconditionally (for unreachable cases and dispatch misses).
#define STRATA_FAIL(...) ::strata::fail_at(__FILE__, __LINE__, ::strata::str(__VA_ARGS__))
