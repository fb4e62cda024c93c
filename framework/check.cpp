// The one place errors are built, so that every message has the same shape.
#include "framework/check.h"

#include <cstdlib>

namespace strata {

bool debug_errors() {
    const char* v = std::getenv("STRATA_DEBUG");
    return v != nullptr && *v != '\0' && std::string(v) != "0";
}

void fail_at(const char* file, int line, const std::string& message) {
    std::string where = std::string(file) + ":" + std::to_string(line);
    throw Error(debug_errors() ? message + " (at " + where + ")" : message, where);
}

}  // namespace strata
