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

#include "moebench/core/tensor.h"

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

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace moebench::ops::cuda {

// Flash attention (FlashAttention-2's algorithm) on bf16 tensors laid out as
// the CPU twin's, with fp32 lse [B, Hq, S]; the [S, S] matrix never exists.
// Head dims (qk / v): 128/128, 192/128 (MLA), 24/16, 16/16; others throw.
// Pointers are device pointers, 16-byte aligned. Work is queued on `stream`;
// nothing waits for it. softmax_scale defaults to 1/sqrt(Dqk).
void causal_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const AttentionShape& shape,
                              std::optional<double> softmax_scale, cudaStream_t stream);

// Version 2 of the forward for Hopper (sm_90a: TMA, wgmma, warp-specialised,
// FlashAttention-3's structure; flash_attention_forward_sm90.cu). Same contract
// as causal_attention_forward, for head dims 128/128 and 192/128 only (others
// throw: use causal_attention_forward); throws on a GPU other than Hopper.
void causal_attention_forward_sm90(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                   const __nv_bfloat16* v, const AttentionShape& shape,
                                   std::optional<double> softmax_scale, cudaStream_t stream);

// Bytes of device scratch causal_attention_backward needs: fp32 accumulators
// for dq [B, S, Hq, Dqk], dk [B, S, Hkv, Dqk], dv [B, S, Hkv, Dv] and the row
// statistic delta = rowsum(dout * out) [B, Hq, S]:
// 4 * (B*S*(Hq*Dqk + Hkv*(Dqk + Dv)) + B*Hq*S).
std::size_t causal_attention_backward_workspace_bytes(const AttentionShape& shape);

// dq, dk, dv (written, bf16) from dout, the forward's inputs, its out and lse.
// workspace: causal_attention_backward_workspace_bytes(shape) bytes, 16-byte
// aligned, contents irrelevant; it may be reused once the stream passes this op.
void causal_attention_backward(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                               const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                               const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse, void* workspace,
                               const AttentionShape& shape, std::optional<double> softmax_scale,
                               cudaStream_t stream);

// Version 2 of the backward for Hopper (sm_90a: TMA, wgmma, warp-specialised,
// FlashAttention-3's key-tile-parallel structure; flash_attention_backward_sm90.cu).
// Same contract and workspace as causal_attention_backward, for head dims
// 128/128 and 192/128 only (others throw: use causal_attention_backward);
// throws on a GPU other than Hopper.
void causal_attention_backward_sm90(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                                    const __nv_bfloat16* dout, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                    const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                                    void* workspace, const AttentionShape& shape,
                                    std::optional<double> softmax_scale, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// lse [B, Hq, S] is f32 (the inputs' dtype on the CPU); the CUDA backward
// takes its workspace from the caching allocator.
void causal_attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                              const AttentionShape& shape, std::optional<double> softmax_scale = std::nullopt);
void causal_attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                               const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                               const AttentionShape& shape, std::optional<double> softmax_scale = std::nullopt);

}  // namespace moebench::ops
