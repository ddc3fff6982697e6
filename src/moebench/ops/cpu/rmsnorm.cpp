#include "moebench/ops/rmsnorm.h"

#include <cmath>

namespace moebench::ops::cpu {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, std::int64_t n, std::int64_t c,
                     std::type_identity_t<T> eps) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* x = inp + i * c;
    T* y = out + i * c;
    T sum_squares = 0;
    for (std::int64_t j = 0; j < c; ++j) sum_squares += x[j] * x[j];
    const T r = T(1) / std::sqrt(sum_squares / T(c) + eps);
    for (std::int64_t j = 0; j < c; ++j) y[j] = x[j] * r * weight[j];
    rstd[i] = r;
  }
}

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, const std::type_identity_t<T>* residual_grad, std::int64_t n,
                      std::int64_t c) {
  // With xhat = x * rstd and g = dout * weight, the gradient through rstd
  // removes from g its projection onto xhat:
  //   dx = rstd * (g - xhat * mean(g * xhat)).
  for (std::int64_t i = 0; i < n; ++i) {
    const T* x = inp + i * c;
    const T* dy = dout + i * c;
    T* dx = dinp + i * c;
    const T r = rstd[i];
    T mean_g_xhat = 0;
    for (std::int64_t j = 0; j < c; ++j) {
      const T xhat = x[j] * r;
      mean_g_xhat += dy[j] * weight[j] * xhat;
      dweight[j] += dy[j] * xhat;
    }
    mean_g_xhat /= T(c);
    for (std::int64_t j = 0; j < c; ++j) {
      dx[j] = r * (dy[j] * weight[j] - x[j] * r * mean_g_xhat);
    }
    if (residual_grad != nullptr) {
      const T* residual = residual_grad + i * c;
      for (std::int64_t j = 0; j < c; ++j) dx[j] += residual[j];
    }
  }
}

#define MOEBENCH_INSTANTIATE_RMSNORM(T)                                                           \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, std::int64_t, std::int64_t, T);    \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, const T*,      \
                                    std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_RMSNORM(float)
MOEBENCH_INSTANTIATE_RMSNORM(double)
#undef MOEBENCH_INSTANTIATE_RMSNORM

}  // namespace moebench::ops::cpu
