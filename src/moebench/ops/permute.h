#pragma once
// Token permutation for MoE dispatch and combine, with Megatron-Core's
// moe_utils semantics: tokens are gathered into expert-sorted order (stable:
// within one expert, ascending token order), and combined back weighted by
// their routing probabilities. Dropping by capacity follows Megatron's
// "probs" drop policy. All arrays are row-major and contiguous. Forward and
// backward take their arguments in the same order; activation gradients are
// written (=).
//
// Vocabulary, for `tokens` tokens each routed to `topk` experts:
//   routing_map [tokens, topk]  expert index of each (token, slot); -1 marks a
//                               dropped slot. A token's experts are distinct.
//   probs       [tokens, topk]  routing weight of each (token, slot).
//   row_id_map  [rows]          for each permuted row, its slot token * topk + slot;
//                               rows = number of slots that are not dropped.
#include <cstdint>

#include "moebench/core/tensor.h"

namespace moebench::ops::cpu {

// Fills row_id_map (room for tokens * topk) and tokens_per_expert[num_experts];
// returns rows. Permuted rows run expert 0's tokens, then expert 1's, ...
std::int64_t sort_slots_by_expert(std::int64_t* row_id_map, std::int64_t* tokens_per_expert,
                                  const std::int64_t* routing_map, std::int64_t tokens,
                                  std::int64_t topk, std::int64_t num_experts);

// permuted[rows, hidden] = input[row_id_map[r] / topk]. Instantiated for float and double.
template <typename T>
void permute_forward(T* permuted, const T* input, const std::int64_t* row_id_map, std::int64_t rows,
                     std::int64_t tokens, std::int64_t topk, std::int64_t hidden);

// dinput[tokens, hidden] = the scatter-add of dpermuted onto each row's token.
template <typename T>
void permute_backward(T* dinput, const T* dpermuted, const std::int64_t* row_id_map,
                      std::int64_t rows, std::int64_t tokens, std::int64_t topk,
                      std::int64_t hidden);

// out[tokens, hidden]: out[t] = sum over t's kept slots of probs[slot] * expert_out[row].
template <typename T>
void unpermute_forward(T* out, const T* expert_out, const T* probs, const std::int64_t* row_id_map,
                       std::int64_t rows, std::int64_t tokens, std::int64_t topk,
                       std::int64_t hidden);

// dexpert_out[rows, hidden] = probs[slot] * dout[token];
// dprobs[tokens, topk] = dout[token] . expert_out[row], 0 for dropped slots.
template <typename T>
void unpermute_backward(T* dexpert_out, T* dprobs, const T* dout, const T* expert_out,
                        const T* probs, const std::int64_t* row_id_map, std::int64_t rows,
                        std::int64_t tokens, std::int64_t topk, std::int64_t hidden);

// Megatron's "probs" drop policy: each expert keeps at most `capacity` of its
// tokens, those with the highest probs (ties: lower token index), and the
// rest are dropped in place (routing_map slot = -1, probs slot = 0). Returns
// the number of dropped slots.
template <typename T>
std::int64_t drop_tokens_over_capacity(std::int64_t* routing_map, T* probs, std::int64_t tokens,
                                       std::int64_t topk, std::int64_t num_experts,
                                       std::int64_t capacity);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

// The device counterpart: the same sort, bf16 rows with fp32 sums, fp32 probs.
// The host never learns `rows` (that would synchronise): the sort leaves it on
// the device as the sum of tokens_per_expert, and the row kernels are driven
// by row_of_slot [tokens, topk], the inverse of row_id_map: a slot's permuted
// row, -1 for a dropped slot. Buffers of permuted rows need room for
// tokens * topk rows; rows past `rows` are left untouched. Rows are 16-byte
// aligned with hidden a multiple of 8; topk <= 32, num_experts <= 1024. A
// routing map entry outside [-1, num_experts) traps the kernel.

// row_id_map [tokens * topk]: the CPU's map (permuted row -> slot), -1 past `rows`;
// row_of_slot [tokens * topk]; tokens_per_expert [num_experts]. Stable, as the CPU's.
void sort_slots_by_expert(std::int64_t* row_id_map, std::int64_t* row_of_slot,
                          std::int64_t* tokens_per_expert, const std::int64_t* routing_map,
                          std::int64_t tokens, std::int64_t topk, std::int64_t num_experts,
                          cudaStream_t stream);

// permuted[row_of_slot[s], hidden] = input[s / topk] for every kept slot s.
void permute_forward(__nv_bfloat16* permuted, const __nv_bfloat16* input,
                     const std::int64_t* row_of_slot, std::int64_t tokens, std::int64_t topk,
                     std::int64_t hidden, cudaStream_t stream);

// dinput[tokens, hidden] = sum over the token's kept slots of dpermuted[row].
void permute_backward(__nv_bfloat16* dinput, const __nv_bfloat16* dpermuted,
                      const std::int64_t* row_of_slot, std::int64_t tokens, std::int64_t topk,
                      std::int64_t hidden, cudaStream_t stream);

// out[tokens, hidden] = residual (nullable: none) + the sum over the
// token's kept slots of probs[slot] * expert_out[row], rounded to bf16 once.
void unpermute_forward(__nv_bfloat16* out, const __nv_bfloat16* expert_out, const float* probs,
                       const std::int64_t* row_of_slot, const __nv_bfloat16* residual, std::int64_t tokens,
                       std::int64_t topk, std::int64_t hidden, cudaStream_t stream);

// dexpert_out[row, hidden] = probs[slot] * dout[token];
// dprobs[tokens, topk] = dout[token] . expert_out[row], 0 for dropped slots.
void unpermute_backward(__nv_bfloat16* dexpert_out, float* dprobs, const __nv_bfloat16* dout,
                        const __nv_bfloat16* expert_out, const float* probs,
                        const std::int64_t* row_of_slot, std::int64_t tokens, std::int64_t topk,
                        std::int64_t hidden, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// The sort of one routing map, which every permutation op below reads.
struct PermuteMap {
  std::int64_t tokens = 0, topk = 0, num_experts = 0;
  // Rows of the permuted buffers. CPU: the kept slots. CUDA: the capacity
  // tokens * topk (the device alone knows the kept count; rows past it are
  // neither read nor written).
  std::int64_t rows = 0;
  Tensor row_id_map;         // i64 [tokens * topk]: slot of each permuted row
  Tensor row_of_slot;        // i64 [tokens * topk]: permuted row of each slot, -1 dropped (CUDA only)
  Tensor tokens_per_expert;  // i64 [E] on the routing map's device
};
PermuteMap sort_slots_by_expert(const Tensor& routing_map, std::int64_t num_experts);
// permuted [rows, H] from input [tokens, H].
void permute_forward(Tensor& permuted, const Tensor& input, const PermuteMap& map);
void permute_backward(Tensor& dinput, const Tensor& dpermuted, const PermuteMap& map);
// probs [tokens, topk] are f32 on CUDA (the activations' dtype on the CPU), as dprobs.
// `residual` (undefined: none), like out, is added to it: the layer's
// residual connection joins the combine.
void unpermute_forward(Tensor& out, const Tensor& expert_out, const Tensor& probs, const PermuteMap& map,
                       const Tensor& residual = Tensor());
void unpermute_backward(Tensor& dexpert_out, Tensor& dprobs, const Tensor& dout, const Tensor& expert_out,
                        const Tensor& probs, const PermuteMap& map);

}  // namespace moebench::ops
