#pragma once
// Named wall-clock timers for the phases of an iteration (Megatron's
// "forward-backward", "optimizer", ...): started and stopped around each
// phase, accumulated until read.
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moebench {

class Timers {
 public:
  void start(std::string_view name);
  // Adds the time since the matching start; throws an Error when not started.
  void stop(std::string_view name);
  // Milliseconds accumulated per timer, in the order timers were first
  // started, and zeroes them for the next iteration.
  std::vector<std::pair<std::string, double>> read_and_reset_ms();

 private:
  struct Timer {
    std::string name;
    double elapsed_ms = 0;
    bool running = false;
    std::chrono::steady_clock::time_point started;
  };
  Timer& find_or_add(std::string_view name);

  std::vector<Timer> timers_;
};

}  // namespace moebench
