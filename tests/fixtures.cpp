// Fixture loading and tensor comparison (see fixtures.h).
#include "tests/fixtures.h"

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>

#include "framework/check.h"

namespace strata::testing {

SafetensorsFile load_fixture(const std::string& name) {
    std::string path = "tests/fixtures/" + name + ".safetensors";
    STRATA_CHECK(std::ifstream(path).good(), "fixture '", path, "' not found: run the tests from the repository root "
                 "(make test does), or regenerate fixtures with `make fixtures`");
    return load_safetensors(path);
}

nlohmann::json fixture_params(const SafetensorsFile& file, const std::string& case_name) {
    auto it = file.metadata.find(case_name);
    STRATA_CHECK(it != file.metadata.end(), "fixture has no parameters for case '", case_name, "'");
    return nlohmann::json::parse(it->second);
}

std::vector<std::string> fixture_cases(const SafetensorsFile& file) {
    auto it = file.metadata.find("cases");
    STRATA_CHECK(it != file.metadata.end(), "fixture has no 'cases' metadata entry");
    std::vector<std::string> cases;
    std::string s = it->second, cur;
    for (char c : s + ",") {
        if (c == ',') {
            if (!cur.empty()) cases.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    return cases;
}

void check_close(const Tensor& actual, const Tensor& expected, double atol, double rtol, const std::string& what) {
    REQUIRE_MESSAGE(actual.defined(), what, ": result is undefined");
    REQUIRE_MESSAGE(actual.shape() == expected.shape(), what, ": shape ", actual.shape_string(), " vs expected ",
                    expected.shape_string());
    std::vector<float> a = actual.to_vector(), e = expected.to_vector();
    size_t worst = 0, bad = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < a.size(); ++i) {
        double limit = atol + rtol * std::abs(double(e[i]));
        double err = std::abs(double(a[i]) - double(e[i]));
        bool ok = err <= limit;  // false for NaN too
        if (!ok) ++bad;
        double excess = std::isnan(err) ? 1e300 : err - limit;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    CHECK_MESSAGE(bad == 0, what, ": ", bad, " of ", a.size(), " elements differ; worst at flat index ", worst, ": ",
                  a.empty() ? 0.f : a[worst], " vs expected ", e.empty() ? 0.f : e[worst]);
}

}  // namespace strata::testing
