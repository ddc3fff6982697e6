#include "moebench/ops/cuda_stream.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/core/cuda_allocator.h"

namespace moebench::ops {
namespace {

thread_local cudaStream_t current = nullptr;  // the legacy default stream

}  // namespace

struct CurrentStream::AllocationGuard {
  explicit AllocationGuard(cudaStream_t stream) : guard(stream) {}
  CudaAllocationStream guard;
};

cudaStream_t current_stream() { return current; }

bool current_device_is_hopper() {
  static const bool hopper = [] {
    int device = 0, major = 0;
    return cudaGetDevice(&device) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major == 9;
  }();
  return hopper;
}

CurrentStream::CurrentStream(cudaStream_t stream)
    : previous_(current), allocation_(std::make_unique<AllocationGuard>(stream)) {
  current = stream;
}

CurrentStream::~CurrentStream() { current = previous_; }

}  // namespace moebench::ops
#endif  // MOEBENCH_WITH_CUDA
