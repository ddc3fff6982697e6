#pragma once
// Host-side setup shared by the sm_90a kernels (grouped GEMM v2, flash
// attention v2): the driver's tensor-map encoder, fetched through the runtime
// so nothing links libcuda, and the once-per-device raise of a kernel's
// dynamic shared-memory limit.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>

#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "moebench/core/cuda_check.h"

namespace moebench::ops::cuda {

inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    MOEBENCH_CUDA_CHECK(
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || function == nullptr)
      throw Error("the CUDA driver offers no cuTensorMapEncodeTiled (needed by the Hopper kernels); update the driver");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
  }();
  return encode;
}

// Throws unless the current device is a Hopper GPU (compute capability 9.x),
// the only one the sm_90a kernels run on. `op` names the caller.
inline void require_hopper(const std::string& op) {
  int device = 0, major = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major != 9) throw Error(op + ": needs a Hopper GPU (sm_90a); this one is sm_" + std::to_string(major) + "x");
}

// Lets `kernel` use up to `bytes` of dynamic shared memory on the current
// device; the attribute is set once per (kernel, device).
template <typename Kernel>
void allow_dynamic_shared_memory(Kernel kernel, int bytes) {
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> configured;
  int device = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  if (configured.insert({reinterpret_cast<const void*>(kernel), device}).second)
    MOEBENCH_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

}  // namespace moebench::ops::cuda
