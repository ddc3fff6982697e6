#pragma once
// Profiling of a window of training iterations (--profile, --profile-step-start,
// --profile-step-end, --profile-ranks, --profile-trace). Inside the window,
// named ranges ("layer 3 forward", "moe dispatch", ...) become NVTX ranges on
// CUDA builds, and the window is bracketed by cudaProfilerStart/Stop so that
// `nsys profile --capture-range=cudaProfilerApi` captures exactly it. With a
// trace path, the ranges' timings are also written as a Chrome/Perfetto trace
// (chrome://tracing, ui.perfetto.dev) at the end of the window, no nsys needed.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moebench::obs {

struct ProfilerOptions {
  bool enabled = false;          // --profile, and this rank is one of --profile-ranks
  int64_t first_iteration = 0;   // --profile-step-start, inclusive
  int64_t last_iteration = 0;    // --profile-step-end, inclusive
  std::filesystem::path trace;   // empty: no trace file
  int rank = 0;                  // the trace's pid
  // The model runs on a GPU: the window is bracketed by cudaProfilerStart/Stop
  // and ranges are timed by CUDA events on the current allocation stream, as
  // the host returns before the work is done.
  bool gpu = false;
};

// One closed range of the trace, in microseconds since the window opened.
// start/duration are when the work ran: on the GPU (CUDA events) for a GPU
// model, else on the host. host_start/host_duration are when the host issued
// it; on a GPU, a range whose GPU start is not later than its host start shows
// the GPU waiting for the host.
struct ProfiledRange {
  std::string name;
  int64_t iteration = 0;
  int depth = 0;  // 0: outermost
  double start_us = 0;
  double duration_us = 0;
  double host_start_us = 0;
  double host_duration_us = 0;
};

class Profiler {
 public:
  explicit Profiler(ProfilerOptions options);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Called by the trainer around each iteration. The first iteration of the
  // window starts the capture and makes this the profiler that ProfileRange
  // records into; the last one stops it and writes the trace.
  void begin_iteration(int64_t iteration);
  void end_iteration(int64_t iteration);
  // Closes a window cut short (training stopped inside it); no-op otherwise.
  void finish();

  // The ranges recorded so far, resolved up to the last ended iteration.
  const std::vector<ProfiledRange>& ranges() const { return ranges_; }

  // The profiler of the open window on this thread, or null outside any.
  static Profiler* active();

 private:
  friend class ProfileRange;
  // A range of the current iteration, not yet resolved to times.
  struct OpenRange {
    std::string name;
    int depth = 0;
    std::chrono::steady_clock::time_point start, stop;
    void* start_event = nullptr;  // cudaEvent_t on a GPU
    void* stop_event = nullptr;
  };
  void open(std::string_view name);
  void close();
  void resolve_iteration();
  void close_window();

  ProfilerOptions options_;
  int64_t iteration_ = 0;
  std::chrono::steady_clock::time_point window_start_;
  void* window_start_event_ = nullptr;  // cudaEvent_t on a GPU
  std::vector<OpenRange> pending_;      // this iteration's ranges, in opening order
  std::vector<size_t> stack_;           // indices in pending_ of the open ones, innermost last
  std::vector<ProfiledRange> ranges_;
};

// A named range for as long as the object lives; free when no window is open,
// so modules open them unconditionally.
class ProfileRange {
 public:
  explicit ProfileRange(std::string_view name);
  ~ProfileRange();
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;

 private:
  Profiler* profiler_;
};

// Runs `body` inside a range named `name` and returns what it returns, so a
// single call can be profiled without opening a scope for it.
template <typename Body>
auto profiled(std::string_view name, Body&& body) {
  const ProfileRange range(name);
  return body();
}

// The trace of `ranges` as Chrome trace-event JSON: one complete ("X") event
// per range, with the iteration in its args, on thread 0 (where the work ran);
// for a GPU model also on thread 1 (when the host issued it).
std::string chrome_trace_json(const std::vector<ProfiledRange>& ranges, int rank, bool gpu);

}  // namespace moebench::obs
