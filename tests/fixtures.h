// Reading the PyTorch reference fixtures and comparing tensors.
//
// tests/fixtures/gen_<op>.py (run once with Debian's python3-torch, `make fixtures`) computes an op's forward and
// backward in PyTorch on fixed inputs and writes tests/fixtures/<op>.safetensors. The C++ tests read those files,
// so the suite itself never needs Python. Inside a file, tensors are named "<case>.<tensor>" (e.g. "s2d1.x",
// "s2d1.y", "s2d1.dx") and each case's parameters are a JSON string in the metadata under the case's name.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "framework/safetensors.h"
#include "framework/tensor.h"

namespace strata::testing {

// tests/fixtures/<name>.safetensors, relative to the repository root (tests run from there).
SafetensorsFile load_fixture(const std::string& name);
// The metadata entry of a case, parsed as JSON.
nlohmann::json fixture_params(const SafetensorsFile& file, const std::string& case_name);
// Case names listed in the metadata entry "cases" (comma-separated).
std::vector<std::string> fixture_cases(const SafetensorsFile& file);

// CHECKs that shapes match and |a - e| <= atol + rtol * |e| everywhere; reports the worst element.
void check_close(const Tensor& actual, const Tensor& expected, double atol, double rtol, const std::string& what);

}  // namespace strata::testing
