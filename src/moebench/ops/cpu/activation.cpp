#include "moebench/ops/activation.h"

#include <algorithm>

namespace moebench::ops::cpu {

template <typename T>
void sigmoid_forward(T* out, const T* inp, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = sigmoid(inp[i]);
}

template <typename T>
void sigmoid_backward(T* dinp, const T* dout, const T* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * out[i] * (T(1) - out[i]);
}

template <typename T>
void softmax_forward(T* out, const T* inp, std::int64_t n, std::int64_t c) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* x = inp + i * c;
    T* y = out + i * c;
    const T max = *std::max_element(x, x + c);
    T sum = 0;
    for (std::int64_t j = 0; j < c; ++j) {
      y[j] = std::exp(x[j] - max);
      sum += y[j];
    }
    for (std::int64_t j = 0; j < c; ++j) y[j] /= sum;
  }
}

template <typename T>
void softmax_backward(T* dinp, const T* dout, const T* out, std::int64_t n, std::int64_t c) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* y = out + i * c;
    const T* dy = dout + i * c;
    T* dx = dinp + i * c;
    T dot = 0;
    for (std::int64_t j = 0; j < c; ++j) dot += dy[j] * y[j];
    for (std::int64_t j = 0; j < c; ++j) dx[j] = y[j] * (dy[j] - dot);
  }
}

#define MOEBENCH_INSTANTIATE_ACTIVATION(T)                                    \
  template void sigmoid_forward<T>(T*, const T*, std::int64_t);               \
  template void sigmoid_backward<T>(T*, const T*, const T*, std::int64_t);    \
  template void softmax_forward<T>(T*, const T*, std::int64_t, std::int64_t); \
  template void softmax_backward<T>(T*, const T*, const T*, std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_ACTIVATION(float)
MOEBENCH_INSTANTIATE_ACTIVATION(double)
#undef MOEBENCH_INSTANTIATE_ACTIVATION

}  // namespace moebench::ops::cpu
