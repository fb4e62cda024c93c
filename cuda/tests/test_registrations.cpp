// Every kernel an op of layers/ registers for the CPU has its CUDA twin registered from cuda/<op>.cu, the file of
// the same name, when that file exists (framework/registration.h keeps who registered what).
#include <doctest/doctest.h>

#include <filesystem>

#include "framework/registration.h"

using namespace strata;

TEST_CASE("cuda registrations: each CPU kernel of layers/<op>.cpp has its twin from cuda/<op>.cu") {
    int checked = 0;
    for (const Registration& r : registrations()) {
        const std::string on_cpu = " on cpu";
        if (r.kind != "kernel" || r.owner.rfind("layers/", 0) != 0 || r.name.size() <= on_cpu.size() ||
            r.name.compare(r.name.size() - on_cpu.size(), on_cpu.size(), on_cpu) != 0)
            continue;
        std::string op = std::filesystem::path(r.owner).stem().string();
        std::string twin = "cuda/" + op + ".cu";
        if (!std::filesystem::exists(twin)) continue;
        std::string kernel = r.name.substr(0, r.name.size() - on_cpu.size());
        CAPTURE(kernel);
        CHECK(registration_owner("kernel", kernel + " on cuda") == twin);
        ++checked;
    }
    CHECK(checked > 20);
}
