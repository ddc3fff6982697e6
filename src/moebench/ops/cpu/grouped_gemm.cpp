// Reference grouped GEMMs: one ops::cpu::gemm per group on that group's rows,
// so the GPU kernels are checked against the same summation as dense GEMMs.
#include "moebench/ops/grouped_gemm.h"

#include <algorithm>

#include "moebench/ops/gemm.h"

namespace moebench::ops::cpu {

template <typename T>
void m_grouped_gemm_nt_contiguous(T* out, const T* a, const T* w, const std::int32_t* group_counts,
                                  std::int64_t num_groups, std::int64_t n, std::int64_t k) {
  std::int64_t offset = 0;
  for (std::int64_t g = 0; g < num_groups; ++g) {
    const std::int64_t rows = std::max<std::int32_t>(group_counts[g], 0);
    gemm(out + offset * n, a + offset * k, w + g * n * k, rows, n, k, GemmLayout::kNT, GemmOutput::kOverwrite);
    offset += rows;
  }
}

template <typename T>
void m_grouped_gemm_nn_contiguous(T* da, const T* dout, const T* w, const std::int32_t* group_counts,
                                  std::int64_t num_groups, std::int64_t n, std::int64_t k) {
  std::int64_t offset = 0;
  for (std::int64_t g = 0; g < num_groups; ++g) {
    const std::int64_t rows = std::max<std::int32_t>(group_counts[g], 0);
    gemm(da + offset * k, dout + offset * n, w + g * n * k, rows, k, n, GemmLayout::kNN, GemmOutput::kOverwrite);
    offset += rows;
  }
}

template <typename T>
void k_grouped_gemm_tn_contiguous(T* dw, const T* dout, const T* a, const std::int32_t* group_counts,
                                  std::int64_t num_groups, std::int64_t n, std::int64_t k) {
  std::int64_t offset = 0;
  for (std::int64_t g = 0; g < num_groups; ++g) {
    const std::int64_t rows = std::max<std::int32_t>(group_counts[g], 0);
    gemm(dw + g * n * k, dout + offset * n, a + offset * k, n, k, rows, GemmLayout::kTN, GemmOutput::kAccumulate);
    offset += rows;
  }
}

#define MOEBENCH_INSTANTIATE_GROUPED_GEMM(T)                                                                \
  template void m_grouped_gemm_nt_contiguous<T>(T*, const T*, const T*, const std::int32_t*, std::int64_t,  \
                                                std::int64_t, std::int64_t);                                \
  template void m_grouped_gemm_nn_contiguous<T>(T*, const T*, const T*, const std::int32_t*, std::int64_t,  \
                                                std::int64_t, std::int64_t);                                \
  template void k_grouped_gemm_tn_contiguous<T>(T*, const T*, const T*, const std::int32_t*, std::int64_t,  \
                                                std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_GROUPED_GEMM(float)
MOEBENCH_INSTANTIATE_GROUPED_GEMM(double)
#undef MOEBENCH_INSTANTIATE_GROUPED_GEMM

}  // namespace moebench::ops::cpu
