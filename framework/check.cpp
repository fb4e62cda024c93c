// The one place errors are built, so that every message has the same shape.
#include "framework/check.h"

namespace strata {

void fail_at(const char* file, int line, const std::string& message) {
    throw Error(message + " (at " + file + ":" + std::to_string(line) + ")");
}

}  // namespace strata
