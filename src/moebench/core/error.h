#pragma once
// The one exception type of moebench. Its message names the thing, the value
// and the fix; the CLI turns it into a one-line error and exit code 2.
#include <stdexcept>
#include <string>

namespace moebench {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace moebench
