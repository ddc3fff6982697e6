// Reference causal attention: one query row at a time, scores kept only for
// that row. The backward is flash-attention's: with P = exp(scale * q k^T - lse)
// and D_s = dout_s . out_s, dS = P * (dout v^T - D), dq = scale * dS k,
// dk = scale * dS^T q, dv = P^T dout.
#include "moebench/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {
namespace {

// Row offsets into q/dq/dout/out, k/dk/v/dv and lse.
struct AttentionIndex {
  const AttentionShape& shape;

  std::int64_t q_row(std::int64_t b, std::int64_t s, std::int64_t h) const {
    return ((b * shape.seq + s) * shape.q_heads + h) * shape.qk_head_dim;
  }
  std::int64_t out_row(std::int64_t b, std::int64_t s, std::int64_t h) const {
    return ((b * shape.seq + s) * shape.q_heads + h) * shape.v_head_dim;
  }
  std::int64_t k_row(std::int64_t b, std::int64_t s, std::int64_t kv_h) const {
    return ((b * shape.seq + s) * shape.kv_heads + kv_h) * shape.qk_head_dim;
  }
  std::int64_t v_row(std::int64_t b, std::int64_t s, std::int64_t kv_h) const {
    return ((b * shape.seq + s) * shape.kv_heads + kv_h) * shape.v_head_dim;
  }
  std::int64_t lse_at(std::int64_t b, std::int64_t h, std::int64_t s) const {
    return (b * shape.q_heads + h) * shape.seq + s;
  }
  std::int64_t kv_head(std::int64_t h) const { return h / (shape.q_heads / shape.kv_heads); }
};

void check_attention_shape(const char* op, const AttentionShape& shape,
                           std::optional<double> softmax_scale) {
  const std::string name(op);
  if (shape.batch < 0 || shape.seq < 0)
    throw Error(name + ": batch " + std::to_string(shape.batch) + " and seq " +
                std::to_string(shape.seq) + " must be >= 0");
  if (shape.q_heads <= 0 || shape.kv_heads <= 0 || shape.q_heads % shape.kv_heads != 0)
    throw Error(name + ": q_heads " + std::to_string(shape.q_heads) + " must be a positive " +
                "multiple of kv_heads " + std::to_string(shape.kv_heads) +
                "; set num_query_groups to a divisor of num_attention_heads");
  if (shape.qk_head_dim <= 0 || shape.v_head_dim <= 0)
    throw Error(name + ": head dims qk " + std::to_string(shape.qk_head_dim) + " and v " +
                std::to_string(shape.v_head_dim) + " must be positive");
  if (softmax_scale && !(*softmax_scale > 0.0))
    throw Error(name + ": softmax_scale " + std::to_string(*softmax_scale) +
                " must be positive; leave it unset for 1/sqrt(qk_head_dim)");
}

template <typename T>
T resolve_scale(const AttentionShape& shape, std::optional<double> softmax_scale) {
  return static_cast<T>(
      softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.qk_head_dim))));
}

template <typename T>
T dot(const T* a, const T* b, std::int64_t n) {
  T sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y[n] += alpha * x[n]
template <typename T>
void axpy(T* y, T alpha, const T* x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace

template <typename T>
void causal_attention_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                              const AttentionShape& shape, std::optional<double> softmax_scale) {
  check_attention_shape("causal_attention_forward", shape, softmax_scale);
  const T scale = resolve_scale<T>(shape, softmax_scale);
  const AttentionIndex at{shape};
  std::vector<T> scores(shape.seq);
  for (std::int64_t b = 0; b < shape.batch; ++b) {
    for (std::int64_t h = 0; h < shape.q_heads; ++h) {
      const std::int64_t kv_h = at.kv_head(h);
      for (std::int64_t s = 0; s < shape.seq; ++s) {
        const T* q_s = q + at.q_row(b, s, h);
        T max_score = -std::numeric_limits<T>::infinity();
        for (std::int64_t j = 0; j <= s; ++j) {
          scores[j] = scale * dot(q_s, k + at.k_row(b, j, kv_h), shape.qk_head_dim);
          max_score = std::max(max_score, scores[j]);
        }
        T* out_s = out + at.out_row(b, s, h);
        std::fill(out_s, out_s + shape.v_head_dim, T(0));
        T sum = 0;
        for (std::int64_t j = 0; j <= s; ++j) {
          const T weight = std::exp(scores[j] - max_score);
          sum += weight;
          axpy(out_s, weight, v + at.v_row(b, j, kv_h), shape.v_head_dim);
        }
        for (std::int64_t d = 0; d < shape.v_head_dim; ++d) out_s[d] /= sum;
        lse[at.lse_at(b, h, s)] = max_score + std::log(sum);
      }
    }
  }
}

template <typename T>
void causal_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                               const T* v, const T* out, const T* lse, const AttentionShape& shape,
                               std::optional<double> softmax_scale) {
  check_attention_shape("causal_attention_backward", shape, softmax_scale);
  const T scale = resolve_scale<T>(shape, softmax_scale);
  const AttentionIndex at{shape};
  const std::int64_t q_size = shape.batch * shape.seq * shape.q_heads * shape.qk_head_dim;
  const std::int64_t k_size = shape.batch * shape.seq * shape.kv_heads * shape.qk_head_dim;
  const std::int64_t v_size = shape.batch * shape.seq * shape.kv_heads * shape.v_head_dim;
  std::fill(dq, dq + q_size, T(0));
  std::fill(dk, dk + k_size, T(0));
  std::fill(dv, dv + v_size, T(0));
  for (std::int64_t b = 0; b < shape.batch; ++b) {
    for (std::int64_t h = 0; h < shape.q_heads; ++h) {
      const std::int64_t kv_h = at.kv_head(h);
      for (std::int64_t s = 0; s < shape.seq; ++s) {
        const T* q_s = q + at.q_row(b, s, h);
        const T* dout_s = dout + at.out_row(b, s, h);
        T* dq_s = dq + at.q_row(b, s, h);
        const T lse_s = lse[at.lse_at(b, h, s)];
        const T dout_dot_out = dot(dout_s, out + at.out_row(b, s, h), shape.v_head_dim);
        for (std::int64_t j = 0; j <= s; ++j) {
          const std::int64_t k_j = at.k_row(b, j, kv_h);
          const std::int64_t v_j = at.v_row(b, j, kv_h);
          const T prob = std::exp(scale * dot(q_s, k + k_j, shape.qk_head_dim) - lse_s);
          axpy(dv + v_j, prob, dout_s, shape.v_head_dim);
          const T dscore = prob * (dot(dout_s, v + v_j, shape.v_head_dim) - dout_dot_out) * scale;
          axpy(dq_s, dscore, k + k_j, shape.qk_head_dim);
          axpy(dk + k_j, dscore, q_s, shape.qk_head_dim);
        }
      }
    }
  }
}

#define MOEBENCH_INSTANTIATE_ATTENTION(T)                                                        \
  template void causal_attention_forward<T>(T*, T*, const T*, const T*, const T*,                \
                                            const AttentionShape&, std::optional<double>);       \
  template void causal_attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, \
                                             const T*, const T*, const AttentionShape&,          \
                                             std::optional<double>);
MOEBENCH_INSTANTIATE_ATTENTION(float)
MOEBENCH_INSTANTIATE_ATTENTION(double)
#undef MOEBENCH_INSTANTIATE_ATTENTION

}  // namespace moebench::ops::cpu
