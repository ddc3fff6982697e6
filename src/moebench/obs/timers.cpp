#include "moebench/obs/timers.h"

#include "moebench/core/error.h"

namespace moebench {

Timers::Timer& Timers::find_or_add(std::string_view name) {
  for (Timer& timer : timers_)
    if (timer.name == name) return timer;
  Timer& timer = timers_.emplace_back();
  timer.name = name;
  return timer;
}

void Timers::start(std::string_view name) {
  Timer& timer = find_or_add(name);
  if (timer.running) throw Error("timer '" + timer.name + "' started twice without a stop");
  timer.running = true;
  timer.started = std::chrono::steady_clock::now();
}

void Timers::stop(std::string_view name) {
  Timer& timer = find_or_add(name);
  if (!timer.running) throw Error("timer '" + timer.name + "' stopped without a start");
  timer.running = false;
  timer.elapsed_ms +=
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - timer.started).count();
}

std::vector<std::pair<std::string, double>> Timers::read_and_reset_ms() {
  std::vector<std::pair<std::string, double>> elapsed;
  for (Timer& timer : timers_) {
    elapsed.emplace_back(timer.name, timer.elapsed_ms);
    timer.elapsed_ms = 0;
  }
  return elapsed;
}

}  // namespace moebench
