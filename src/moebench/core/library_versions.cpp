#include "moebench/core/library_versions.h"

#ifdef MOEBENCH_WITH_CUDA
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>
#endif

namespace moebench {
namespace {

[[maybe_unused]] std::string dotted(int major, int minor, int patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> library_versions() {
  std::vector<std::pair<std::string, std::string>> versions;
#ifdef MOEBENCH_WITH_CUDA
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  versions.emplace_back("CUDA runtime", dotted(runtime / 1000, runtime % 1000 / 10, 0));
  int driver = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0)
    versions.emplace_back("CUDA driver", dotted(driver / 1000, driver % 1000 / 10, 0));
  else
    versions.emplace_back("CUDA driver", "none");
  // cuBLASLt encodes major*10000 + minor*100 + patch since 12.x.
  const size_t cublas = cublasLtGetVersion();
  versions.emplace_back("cuBLASLt", dotted(int(cublas / 10000), int(cublas / 100 % 100), int(cublas % 100)));
  const size_t cudnn = cudnnGetVersion();
  versions.emplace_back("cuDNN", dotted(int(cudnn / 10000), int(cudnn / 100 % 100), int(cudnn % 100)));
  int nccl = 0;
  ncclGetVersion(&nccl);
  versions.emplace_back("NCCL", dotted(nccl / 10000, nccl / 100 % 100, nccl % 100));
#endif
  return versions;
}

}  // namespace moebench
