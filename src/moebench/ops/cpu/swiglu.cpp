#include "moebench/ops/swiglu.h"

#include "moebench/ops/activation.h"

namespace moebench::ops::cpu {

template <typename T>
void swiglu_forward(T* out, const T* inp, std::int64_t n, std::int64_t f) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* gate = inp + i * 2 * f;
    const T* up = gate + f;
    T* y = out + i * f;
    for (std::int64_t j = 0; j < f; ++j) y[j] = gate[j] * sigmoid(gate[j]) * up[j];
  }
}

template <typename T>
void swiglu_backward(T* dinp, const T* dout, const T* inp, std::int64_t n, std::int64_t f) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* gate = inp + i * 2 * f;
    const T* up = gate + f;
    const T* dy = dout + i * f;
    T* dgate = dinp + i * 2 * f;
    T* dup = dgate + f;
    for (std::int64_t j = 0; j < f; ++j) {
      const T s = sigmoid(gate[j]);
      // silu'(x) = s + x * s * (1 - s) = s * (1 + x * (1 - s))
      dgate[j] = dy[j] * up[j] * s * (T(1) + gate[j] * (T(1) - s));
      dup[j] = dy[j] * gate[j] * s;
    }
  }
}

#define MOEBENCH_INSTANTIATE_SWIGLU(T)                                       \
  template void swiglu_forward<T>(T*, const T*, std::int64_t, std::int64_t); \
  template void swiglu_backward<T>(T*, const T*, const T*, std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_SWIGLU(float)
MOEBENCH_INSTANTIATE_SWIGLU(double)
#undef MOEBENCH_INSTANTIATE_SWIGLU

}  // namespace moebench::ops::cpu
