#pragma once
// Times a launch sequence on the GPU with CUDA events: a few warm-up runs,
// then the mean over `iterations`, in microseconds. For the *Timing.* tests,
// which print speed and assert only correctness.
#include <cuda_runtime_api.h>

#include <cstdio>

#include "moebench/core/cuda_check.h"

namespace moebench::gpu_testing {

template <typename Launch>
double mean_microseconds(Launch&& launch, int iterations = 20, cudaStream_t stream = nullptr) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t start, stop;
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&start));
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&stop));
  MOEBENCH_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iterations; ++i) launch();
  MOEBENCH_CUDA_CHECK(cudaEventRecord(stop, stream));
  MOEBENCH_CUDA_CHECK(cudaEventSynchronize(stop));
  float milliseconds = 0;
  MOEBENCH_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start, stop));
  MOEBENCH_CUDA_CHECK(cudaEventDestroy(start));
  MOEBENCH_CUDA_CHECK(cudaEventDestroy(stop));
  return 1000.0 * milliseconds / iterations;
}

// "<name>: 123.4 us, 2.81 TB/s" for a kernel that moves `bytes`.
inline void print_bandwidth(const char* name, double microseconds, double bytes) {
  std::printf("  %-48s %9.1f us  %7.3f TB/s\n", name, microseconds, bytes / (microseconds * 1e-6) / 1e12);
}

}  // namespace moebench::gpu_testing
