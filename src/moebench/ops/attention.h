#pragma once
// Causal scaled-dot-product attention with grouped-query heads (GQA, MQA) and
// separate query-key and value head sizes (MLA), flash-attention style: the
// forward saves only the log-sum-exp of each query row, and the backward
// recomputes the probabilities from q, k and that log-sum-exp, so no
// [S, S] matrix lives between the two. All arrays are row-major and
// contiguous. Forward and backward take their arguments in the same order;
// activation gradients are written (=).
#include <cstdint>
#include <optional>

namespace moebench::ops {

// Query head h reads key/value head h / (q_heads / kv_heads), as HF's
// repeat_kv and Megatron's GQA do.
struct AttentionShape {
  std::int64_t batch;
  std::int64_t seq;
  std::int64_t q_heads;
  std::int64_t kv_heads;     // divides q_heads
  std::int64_t qk_head_dim;  // Dqk (MLA: nope + rope, e.g. 192)
  std::int64_t v_head_dim;   // Dv (MLA: e.g. 128)
};

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// out[B, S, Hq, Dv] = softmax(scale * q k^T, causal) v per (batch, query head);
// lse[B, Hq, S] = log sum_j exp(scale * q_s . k_j) over j <= s.
// q is [B, S, Hq, Dqk], k [B, S, Hkv, Dqk], v [B, S, Hkv, Dv].
// softmax_scale defaults to 1/sqrt(Dqk). Instantiated for float and double.
template <typename T>
void causal_attention_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                              const AttentionShape& shape,
                              std::optional<double> softmax_scale = std::nullopt);

// dq, dk, dv (shaped as q, k, v) from dout [B, S, Hq, Dv] and the forward's
// out and lse. dk and dv sum over the query heads sharing a kv head.
template <typename T>
void causal_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                               const T* v, const T* out, const T* lse, const AttentionShape& shape,
                               std::optional<double> softmax_scale = std::nullopt);

}  // namespace moebench::ops::cpu
