// libFuzzer target for the list reader (see fuzz/targets.h and fuzz/README.md).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    strata::fuzz::list_target(data, size);
    return 0;
}
