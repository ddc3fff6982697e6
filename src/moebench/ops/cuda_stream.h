#pragma once
// The CUDA stream the Tensor-level ops (ops/<family>.h, namespace
// moebench::ops) queue their work on: the legacy default stream unless a
// CurrentStream guard names another on this thread. The guard also makes
// the caching allocator hand out blocks meant for that stream.
#ifdef MOEBENCH_WITH_CUDA
#include <cuda_runtime_api.h>

#include <memory>

namespace moebench::ops {

cudaStream_t current_stream();

// Whether the current device is a Hopper GPU (compute capability 9.x), where
// the sm_90a kernels (wgmma, TMA) run; read once per process.
bool current_device_is_hopper();

// Sets this thread's current stream until it goes out of scope (guards nest).
class CurrentStream {
 public:
  explicit CurrentStream(cudaStream_t stream);
  ~CurrentStream();
  CurrentStream(const CurrentStream&) = delete;
  CurrentStream& operator=(const CurrentStream&) = delete;

 private:
  cudaStream_t previous_;
  struct AllocationGuard;
  std::unique_ptr<AllocationGuard> allocation_;
};

}  // namespace moebench::ops
#endif  // MOEBENCH_WITH_CUDA
