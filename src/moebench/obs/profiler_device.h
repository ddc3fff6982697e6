#pragma once
// The CUDA side of the Profiler (profiler_device.cu, compiled only with CUDA):
// NVTX ranges for nsys, the cudaProfilerApi capture range, and CUDA events
// (passed as opaque handles so that obs headers need no CUDA) for the trace.
#include <string>

namespace moebench::obs::device_profiling {

void start_capture();
void stop_capture();
void push_range(const std::string& name);
void pop_range();
// An event recorded now on the current allocation stream.
void* record_event();
// Milliseconds from `from` to `to`, waiting for `to` to complete.
double elapsed_ms(void* from, void* to);
void destroy_event(void* event);

}  // namespace moebench::obs::device_profiling
