#pragma once
// Error checks for CUDA runtime and library calls: a failure becomes a
// moebench::Error naming the call, the file and line, and the library's message.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <string>

#include "moebench/core/error.h"

namespace moebench {

[[noreturn]] inline void throw_cuda_error(const char* call, const char* file, int line, const std::string& what) {
  throw Error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " + what);
}

}  // namespace moebench

#define MOEBENCH_CUDA_CHECK(call)                                                                   \
  do {                                                                                              \
    cudaError_t moebench_status_ = (call);                                                          \
    if (moebench_status_ != cudaSuccess)                                                            \
      ::moebench::throw_cuda_error(#call, __FILE__, __LINE__, cudaGetErrorString(moebench_status_)); \
  } while (0)

#define MOEBENCH_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                                   \
    cublasStatus_t moebench_status_ = (call);                                                            \
    if (moebench_status_ != CUBLAS_STATUS_SUCCESS)                                                       \
      ::moebench::throw_cuda_error(#call, __FILE__, __LINE__, cublasLtGetStatusString(moebench_status_)); \
  } while (0)
