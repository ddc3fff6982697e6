#include "moebench/ops/elementwise.h"

#include <cstring>

#include "moebench/ops/activation.h"

namespace moebench::ops::cpu {

template <typename T>
void add(T* target, const T* addend, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) target[i] += addend[i];
}

template <typename T>
void copy_columns(T* dst, std::int64_t dst_width, std::int64_t dst_col, const T* src, std::int64_t src_width,
                  std::int64_t src_col, std::int64_t rows, std::int64_t count) {
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_width + dst_col, src + r * src_width + src_col, count * sizeof(T));
}

template <typename T>
void add_columns(T* dst, std::int64_t dst_width, std::int64_t dst_col, const T* src, std::int64_t src_width,
                 std::int64_t src_col, std::int64_t rows, std::int64_t count) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < count; ++i) dst[r * dst_width + dst_col + i] += src[r * src_width + src_col + i];
}

template <typename T>
void sigmoid_gate_forward(T* out, T* gate, const T* inp, const T* weight, const T* mlp_out, std::int64_t n,
                          std::int64_t hidden) {
  for (std::int64_t t = 0; t < n; ++t) {
    T logit = 0;
    for (std::int64_t c = 0; c < hidden; ++c) logit += inp[t * hidden + c] * weight[c];
    const T g = sigmoid(logit);
    gate[t] = g;
    for (std::int64_t c = 0; c < hidden; ++c) out[t * hidden + c] = g * mlp_out[t * hidden + c];
  }
}

template <typename T>
void sigmoid_gate_backward(T* dmlp_out, T* dlogit, T* dweight, const T* dout, const T* inp, const T* mlp_out,
                           const T* gate, std::int64_t n, std::int64_t hidden) {
  for (std::int64_t t = 0; t < n; ++t) {
    const T g = gate[t];
    T dgate = 0;
    for (std::int64_t c = 0; c < hidden; ++c) {
      const T d = dout[t * hidden + c];
      dmlp_out[t * hidden + c] = g * d;
      dgate += d * mlp_out[t * hidden + c];
    }
    dlogit[t] = dgate * g * (1 - g);
    for (std::int64_t c = 0; c < hidden; ++c) dweight[c] += dlogit[t] * inp[t * hidden + c];
  }
}

template <typename T>
void sigmoid_gate_input_backward(T* dinp, const T* dlogit, const T* weight, std::int64_t n, std::int64_t hidden) {
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t c = 0; c < hidden; ++c) dinp[t * hidden + c] += dlogit[t] * weight[c];
}

#define MOEBENCH_INSTANTIATE_ELEMENTWISE(T)                                                                     \
  template void add<T>(T*, const T*, std::int64_t);                                                            \
  template void copy_columns<T>(T*, std::int64_t, std::int64_t, const T*, std::int64_t, std::int64_t,          \
                                std::int64_t, std::int64_t);                                                   \
  template void add_columns<T>(T*, std::int64_t, std::int64_t, const T*, std::int64_t, std::int64_t,           \
                               std::int64_t, std::int64_t);                                                    \
  template void sigmoid_gate_forward<T>(T*, T*, const T*, const T*, const T*, std::int64_t, std::int64_t);     \
  template void sigmoid_gate_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, std::int64_t,     \
                                         std::int64_t);                                                        \
  template void sigmoid_gate_input_backward<T>(T*, const T*, const T*, std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_ELEMENTWISE(float)
MOEBENCH_INSTANTIATE_ELEMENTWISE(double)
#undef MOEBENCH_INSTANTIATE_ELEMENTWISE

}  // namespace moebench::ops::cpu
