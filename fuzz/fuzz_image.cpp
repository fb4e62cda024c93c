// libFuzzer target for the image reader (see fuzz/targets.h and fuzz/README.md).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    strata::fuzz::image_target(data, size);
    return 0;
}
