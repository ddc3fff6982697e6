// Reference GEMM: plain loops ordered so the innermost one walks contiguous
// memory, which keeps the tiny CI models fast on one core.
#include "moebench/ops/gemm.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "moebench/ops/elementwise.h"

namespace moebench::ops::cpu {
namespace {

// c[M,N] += a[M,K] @ b[K,N]: i-k-j, a row of b scaled into a row of c.
template <typename T>
void accumulate_nn(T* c, const T* a, const T* b, std::int64_t m, std::int64_t n, std::int64_t k) {
  for (std::int64_t i = 0; i < m; ++i) {
    T* c_row = c + i * n;
    for (std::int64_t p = 0; p < k; ++p) {
      const T a_ip = a[i * k + p];
      const T* b_row = b + p * n;
      for (std::int64_t j = 0; j < n; ++j) c_row[j] += a_ip * b_row[j];
    }
  }
}

// c[M,N] += a[K,M]^T @ b[K,N]: k-i-j, one rank-1 update per row pair of a and b.
template <typename T>
void accumulate_tn(T* c, const T* a, const T* b, std::int64_t m, std::int64_t n, std::int64_t k) {
  for (std::int64_t p = 0; p < k; ++p) {
    const T* a_row = a + p * m;
    const T* b_row = b + p * n;
    for (std::int64_t i = 0; i < m; ++i) {
      const T a_pi = a_row[i];
      T* c_row = c + i * n;
      for (std::int64_t j = 0; j < n; ++j) c_row[j] += a_pi * b_row[j];
    }
  }
}

}  // namespace

template <typename T>
void gemm(T* c, const T* a, const T* b, std::int64_t m, std::int64_t n, std::int64_t k,
          GemmLayout layout, GemmOutput output) {
  if (output == GemmOutput::kOverwrite) std::fill(c, c + m * n, T(0));
  switch (layout) {
    case GemmLayout::kNN:
      accumulate_nn(c, a, b, m, n, k);
      break;
    case GemmLayout::kNT: {
      // Row-by-row dot products do not vectorise under strict FP ordering;
      // one transposed copy of b lets the NN loop run instead, at the cost
      // of K*N extra memory, and gives NT and NN the same summation order.
      std::vector<T> b_transposed(static_cast<std::size_t>(k * n));
      for (std::int64_t j = 0; j < n; ++j) {
        for (std::int64_t p = 0; p < k; ++p) b_transposed[p * n + j] = b[j * k + p];
      }
      accumulate_nn(c, a, b_transposed.data(), m, n, k);
      break;
    }
    case GemmLayout::kTN:
      accumulate_tn(c, a, b, m, n, k);
      break;
  }
}

template <typename T>
void linear_forward(T* out, const T* inp, const T* weight, const std::type_identity_t<T>* bias,
                    const std::type_identity_t<T>* residual, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features) {
  // A residual that is out itself is kept aside before out is overwritten.
  std::vector<T> kept;
  if (residual == out) {
    kept.assign(out, out + n * out_features);
    residual = kept.data();
  }
  // Start every row at the bias (or zero) and add the product onto it.
  for (std::int64_t i = 0; i < n; ++i) {
    T* out_row = out + i * out_features;
    if (bias != nullptr) {
      std::copy(bias, bias + out_features, out_row);
    } else {
      std::fill(out_row, out_row + out_features, T(0));
    }
  }
  gemm(out, inp, weight, n, out_features, in_features, GemmLayout::kNT, GemmOutput::kAccumulate);
  if (residual != nullptr) add(out, residual, n * out_features);
}

template <typename T>
void linear_backward(T* dinp, T* dweight, std::type_identity_t<T>* dbias, const T* dout,
                     const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                     std::int64_t out_features, GemmOutput dinp_output) {
  // dinp += takes the whole product first, then one add: the sums of a separate add.
  const bool accumulate = dinp_output == GemmOutput::kAccumulate;
  std::vector<T> product(accumulate ? static_cast<std::size_t>(n * in_features) : 0);
  T* product_out = accumulate ? product.data() : dinp;
  gemm(product_out, dout, weight, n, in_features, out_features, GemmLayout::kNN, GemmOutput::kOverwrite);
  if (accumulate) add(dinp, product_out, n * in_features);
  gemm(dweight, dout, inp, out_features, in_features, n, GemmLayout::kTN, GemmOutput::kAccumulate);
  if (dbias == nullptr) return;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* dout_row = dout + i * out_features;
    for (std::int64_t o = 0; o < out_features; ++o) dbias[o] += dout_row[o];
  }
}

#define MOEBENCH_INSTANTIATE_GEMM(T)                                                            \
  template void gemm<T>(T*, const T*, const T*, std::int64_t, std::int64_t, std::int64_t,       \
                        GemmLayout, GemmOutput);                                                \
  template void linear_forward<T>(T*, const T*, const T*, const T*, const T*, std::int64_t,     \
                                  std::int64_t, std::int64_t);                                  \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, std::int64_t,      \
                                   std::int64_t, std::int64_t, GemmOutput);
MOEBENCH_INSTANTIATE_GEMM(float)
MOEBENCH_INSTANTIATE_GEMM(double)
#undef MOEBENCH_INSTANTIATE_GEMM

}  // namespace moebench::ops::cpu
