#pragma once
// The argument contract both grouped GEMM kernels (grouped_gemm.cu,
// grouped_gemm_sm90.cu) check before a launch: group count, token capacity,
// 16-byte rows and aligned, non-null pointers. Throws Error naming the entry
// point `name`, the value and the way out.
#include <climits>
#include <cstdint>
#include <string>

#include "moebench/core/error.h"
#include "moebench/ops/grouped_gemm.h"

namespace moebench::ops::cuda {

inline void check_grouped_gemm_arguments(const char* name, const void* out, const void* mma_a, const void* mma_b,
                                         const std::int32_t* group_counts, std::int64_t num_groups,
                                         std::int64_t m_capacity, std::int64_t n, std::int64_t k) {
  const std::string prefix = std::string(name) + ": ";
  if (num_groups < 1 || num_groups > kMaxGroupedGemmGroups) {
    throw Error(prefix + "num_groups=" + std::to_string(num_groups) + " must be in [1, " +
                std::to_string(kMaxGroupedGemmGroups) + "]");
  }
  if (m_capacity < 0 || m_capacity > INT_MAX) {
    throw Error(prefix + "m_capacity=" + std::to_string(m_capacity) + " must be in [0, 2^31)");
  }
  if (n < 8 || k < 8 || n % 8 != 0 || k % 8 != 0 || n > INT_MAX || k > INT_MAX) {
    throw Error(prefix + "n=" + std::to_string(n) + " and k=" + std::to_string(k) +
                " must be positive multiples of 8 (16-byte rows); use the _cublaslt_loop path otherwise");
  }
  const void* pointers[] = {out, mma_a, mma_b, group_counts};
  const char* pointer_names[] = {"output", "first operand", "second operand", "group_counts"};
  for (int i = 0; i < 4; ++i) {
    if (pointers[i] == nullptr) throw Error(prefix + pointer_names[i] + " is null");
    if (i < 3 && reinterpret_cast<std::uintptr_t>(pointers[i]) % 16 != 0) {
      throw Error(prefix + pointer_names[i] + " is not 16-byte aligned");
    }
  }
}

}  // namespace moebench::ops::cuda
