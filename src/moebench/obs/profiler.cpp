#include "moebench/obs/profiler.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"
#ifdef MOEBENCH_WITH_CUDA
#include "moebench/obs/profiler_device.h"
#endif

namespace moebench::obs {
namespace {

// Ranges are opened deep inside the model, where no handle is passed, so the
// open window is found per thread, as NVTX itself does.
thread_local Profiler* active_profiler = nullptr;

double microseconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

}  // namespace

Profiler::Profiler(ProfilerOptions options) : options_(std::move(options)) {}

Profiler::~Profiler() {
  if (active_profiler == this) active_profiler = nullptr;
#ifdef MOEBENCH_WITH_CUDA
  if (!options_.gpu) return;
  // Left by a window that an error cut short.
  for (const OpenRange& range : pending_) {
    device_profiling::destroy_event(range.start_event);
    if (range.stop_event) device_profiling::destroy_event(range.stop_event);
  }
  if (window_start_event_) device_profiling::destroy_event(window_start_event_);
#endif
}

Profiler* Profiler::active() { return active_profiler; }

void Profiler::begin_iteration(int64_t iteration) {
  if (!options_.enabled || iteration < options_.first_iteration || iteration > options_.last_iteration) return;
  iteration_ = iteration;
  if (active_profiler == this) return;
  active_profiler = this;
  window_start_ = std::chrono::steady_clock::now();
#ifdef MOEBENCH_WITH_CUDA
  if (options_.gpu) {
    device_profiling::start_capture();
    window_start_event_ = device_profiling::record_event();
  }
#endif
}

void Profiler::end_iteration(int64_t iteration) {
  if (active_profiler != this) return;
  resolve_iteration();
  if (iteration >= options_.last_iteration) close_window();
}

void Profiler::finish() {
  if (active_profiler != this) return;
  resolve_iteration();
  close_window();
}

void Profiler::open(std::string_view name) {
  OpenRange& range = pending_.emplace_back();
  range.name = name;
  range.depth = int(stack_.size());
  stack_.push_back(pending_.size() - 1);
#ifdef MOEBENCH_WITH_CUDA
  device_profiling::push_range(range.name);
  if (options_.gpu) range.start_event = device_profiling::record_event();
#endif
  range.start = std::chrono::steady_clock::now();
}

void Profiler::close() {
  OpenRange& range = pending_[stack_.back()];
  stack_.pop_back();
  range.stop = std::chrono::steady_clock::now();
#ifdef MOEBENCH_WITH_CUDA
  if (options_.gpu) range.stop_event = device_profiling::record_event();
  device_profiling::pop_range();
#endif
}

void Profiler::resolve_iteration() {
  if (!stack_.empty()) throw Error("profile range " + pending_[stack_.back()].name + " is still open at the iteration's end");
  for (OpenRange& open : pending_) {
    ProfiledRange& range = ranges_.emplace_back();
    range.name = std::move(open.name);
    range.iteration = iteration_;
    range.depth = open.depth;
    range.host_start_us = range.start_us = microseconds(open.start - window_start_);
    range.host_duration_us = range.duration_us = microseconds(open.stop - open.start);
#ifdef MOEBENCH_WITH_CUDA
    if (options_.gpu) {
      range.start_us = 1e3 * device_profiling::elapsed_ms(window_start_event_, open.start_event);
      range.duration_us = 1e3 * device_profiling::elapsed_ms(open.start_event, open.stop_event);
      device_profiling::destroy_event(open.start_event);
      device_profiling::destroy_event(open.stop_event);
    }
#endif
  }
  pending_.clear();
}

void Profiler::close_window() {
  active_profiler = nullptr;
#ifdef MOEBENCH_WITH_CUDA
  if (options_.gpu) {
    device_profiling::stop_capture();
    device_profiling::destroy_event(window_start_event_);
    window_start_event_ = nullptr;
  }
#endif
  if (!options_.trace.empty()) write_file_atomically(options_.trace, chrome_trace_json(ranges_, options_.rank, options_.gpu));
}

ProfileRange::ProfileRange(std::string_view name) : profiler_(Profiler::active()) {
  if (profiler_) profiler_->open(name);
}

ProfileRange::~ProfileRange() {
  if (profiler_) profiler_->close();
}

std::string chrome_trace_json(const std::vector<ProfiledRange>& ranges, int rank, bool gpu) {
  nlohmann::json events = nlohmann::json::array();
  const auto add = [&](const ProfiledRange& range, int tid, double start_us, double duration_us) {
    events.push_back({{"name", range.name},
                      {"ph", "X"},
                      {"ts", start_us},
                      {"dur", duration_us},
                      {"pid", rank},
                      {"tid", tid},
                      {"args", {{"iteration", range.iteration}}}});
  };
  for (const ProfiledRange& range : ranges) add(range, 0, range.start_us, range.duration_us);
  if (gpu)
    for (const ProfiledRange& range : ranges) add(range, 1, range.host_start_us, range.host_duration_us);
  const auto name_thread = [&](int tid, const char* name) {
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", tid}, {"args", {{"name", name}}}});
  };
  name_thread(0, gpu ? "gpu" : "host");
  if (gpu) name_thread(1, "host (issue)");
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() + "\n";
}

}  // namespace moebench::obs
