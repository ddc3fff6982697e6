#pragma once
// The heads of Megatron's fused QKV projection, taken apart and put back:
// each row of qkv holds, per query group g, its heads/groups query heads,
// then its key head, then its value head, head_dim channels each:
//   qkv [tokens, groups * (heads / groups + 2) * head_dim]
//   <-> q [tokens, heads, head_dim], k and v [tokens, groups, head_dim].
// With a rotary table, q and k leave the split rotated and dq and dk enter
// the merge through the transposed rotation (RoPE in the half layout,
// ops/rope.h), so the attention's rotation costs no pass of its own.
#include <cstdint>

#include "moebench/core/tensor.h"
#include "moebench/ops/rope.h"

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

struct QkvShape {
  std::int64_t tokens, heads, groups, head_dim;
};

// The rotation of q and k, or none (cos == nullptr): the table's rot_dim
// first channels of each head in the half layout, at positions[token]
// (int64 on the device; outside the table the rotated channels are NaN).
struct QkvRotation {
  RopeTableView table;
  const std::int64_t* positions = nullptr;
};

// q, k, v from qkv; q and k rotated when `rotation` has a table. One pass:
// each thread moves 8 channels (and, rotated, their partners half a
// rotation away) when widths and pointers allow 16-byte accesses, else one.
void split_qkv(__nv_bfloat16* q, __nv_bfloat16* k, __nv_bfloat16* v, const __nv_bfloat16* qkv,
               const QkvShape& shape, const QkvRotation& rotation, cudaStream_t stream);
// The adjoint: dqkv from dq, dk, dv, dq and dk rotated back (transposed).
void merge_qkv(__nv_bfloat16* dqkv, const __nv_bfloat16* dq, const __nv_bfloat16* dk, const __nv_bfloat16* dv,
               const QkvShape& shape, const QkvRotation& rotation, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// The rotation as the Tensor-level ops take it (RotaryEmbedding::rotation):
// the table and the tokens' positions (i64 [tokens] on the tensors' device).
struct QkvRotation {
  RopeTableTensors table;
  Tensor positions;
};

// qkv [tokens, fused width] -> q [tokens, heads, head_dim], k and v [tokens,
// groups, head_dim] (shapes read from q and k); `rotation` (may be null)
// rotates q and k. CPU f32/f64: copies, then rope_forward; CUDA bf16: one kernel.
void split_qkv(Tensor& q, Tensor& k, Tensor& v, const Tensor& qkv, const QkvRotation* rotation);
// The adjoint of split_qkv: dqkv (written) from dq, dk, dv.
void merge_qkv(Tensor& dqkv, const Tensor& dq, const Tensor& dk, const Tensor& dv, const QkvRotation* rotation);

}  // namespace moebench::ops
