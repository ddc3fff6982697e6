#pragma once
// Versions of the GPU libraries this binary was built against and runs with,
// for `moebench --version`. Empty in a CPU-only build.
#include <string>
#include <utility>
#include <vector>

namespace moebench {

// (library, version) pairs, e.g. ("CUDA runtime", "13.0").
std::vector<std::pair<std::string, std::string>> library_versions();

}  // namespace moebench
