#include "moebench/obs/profiler_device.h"

#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include "moebench/core/cuda_allocator.h"
#include "moebench/core/cuda_check.h"

namespace moebench::obs::device_profiling {

void start_capture() { MOEBENCH_CUDA_CHECK(cudaProfilerStart()); }
void stop_capture() { MOEBENCH_CUDA_CHECK(cudaProfilerStop()); }
void push_range(const std::string& name) { nvtxRangePushA(name.c_str()); }
void pop_range() { nvtxRangePop(); }

void* record_event() {
  cudaEvent_t event;
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&event));
  MOEBENCH_CUDA_CHECK(cudaEventRecord(event, CudaAllocationStream::current()));
  return event;
}

double elapsed_ms(void* from, void* to) {
  MOEBENCH_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(to)));
  float ms = 0;
  MOEBENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(from), static_cast<cudaEvent_t>(to)));
  return ms;
}

void destroy_event(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

}  // namespace moebench::obs::device_profiling
