// The fused QKV rows taken apart into q, k, v heads and put back (see
// ops/qkv_heads.h), with RoPE on the way (half layout, fp32 math):
//   split  q, k = rotate(their heads of qkv), v = its heads
//   merge  dqkv = the heads of rotate^T(dq), rotate^T(dk), dv
// A rotated pair is (c, c + h), h = rot_dim / 2, c < h:
//   rotate    (a, b) -> (a cos - b sin, b cos + a sin)
//   rotate^T  (a, b) -> (a cos + b sin, b cos - a sin)
// Kernel (version 1): qkv_heads_kernel, one thread per (token, fused head,
// unit); a unit is V channels c..c+V-1 below h together with their partners
// c+h.. (rotated for q and k heads, copied for v), or V channels past
// rot_dim (copied). V = 8 (16-byte accesses) when every width and pointer
// allows it, else 1. It replaces one cudaMemcpy2DAsync per head group and
// tensor (3 x groups copies of narrow rows, slow on the copy engines) plus
// the two rope passes over q and k.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1 -c src/moebench/ops/cuda/qkv_heads.cu
// Check and time: tests/gpu/qkv_heads_test.cpp.
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/qkv_heads.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kThreads = 256;

// cos or sin of V consecutive frequencies (two 16-byte loads for V = 8: the
// table rows and `first` are multiples of 8 floats).
template <int V>
__device__ inline void load_angles(float (&out)[V], const float* first) {
  if constexpr (V == kPackSize) {
    const float4 low = *reinterpret_cast<const float4*>(first), high = *reinterpret_cast<const float4*>(first + 4);
    out[0] = low.x, out[1] = low.y, out[2] = low.z, out[3] = low.w;
    out[4] = high.x, out[5] = high.y, out[6] = high.z, out[7] = high.w;
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) out[j] = first[j];
  }
}

// Where one fused head lives in q, k or v, and whether it is rotated.
struct HeadPlace {
  std::int64_t separate_offset;  // of the head's first channel in q, k or v
  int tensor;                    // 0 q, 1 k, 2 v
};

__device__ inline HeadPlace place_of(std::int64_t token, std::int64_t fused_head, const QkvShape& s) {
  const std::int64_t per_group = s.heads / s.groups;
  const std::int64_t group = fused_head / (per_group + 2), within = fused_head % (per_group + 2);
  if (within < per_group) return {(token * s.heads + group * per_group + within) * s.head_dim, 0};
  return {(token * s.groups + group) * s.head_dim, within == per_group ? 1 : 2};
}

// kMerge false: fused -> separate (forward rotation); true: separate ->
// fused (transposed rotation).
template <int V, bool kMerge>
__global__ void __launch_bounds__(kThreads)
    qkv_heads_kernel(__nv_bfloat16* fused, __nv_bfloat16* q, __nv_bfloat16* k, __nv_bfloat16* v, QkvShape s,
                     QkvRotation rotation, std::int64_t total_units) {
  const std::int64_t id = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= total_units) return;
  const bool rotating = rotation.table.cos != nullptr;
  const std::int64_t half = rotating ? rotation.table.rot_dim / 2 : 0;
  const std::int64_t rest = s.head_dim - 2 * half;  // channels copied as they are
  const std::int64_t units = (half + rest) / V;
  const std::int64_t fused_heads = s.groups * (s.heads / s.groups + 2);
  const std::int64_t unit = id % units, fused_head = (id / units) % fused_heads, token = id / units / fused_heads;
  const HeadPlace place = place_of(token, fused_head, s);
  __nv_bfloat16* separate = (place.tensor == 0 ? q : place.tensor == 1 ? k : v) + place.separate_offset;
  __nv_bfloat16* fused_head_start = fused + (token * fused_heads + fused_head) * s.head_dim;
  __nv_bfloat16* source = kMerge ? separate : fused_head_start;
  __nv_bfloat16* target = kMerge ? fused_head_start : separate;

  const std::int64_t channel = unit * V;
  if (channel >= half) {  // past the rotated pairs: copied
    const std::int64_t c = half + channel;
    float x[V];
    load_bf16<V>(x, source + c);
    store_bf16<V>(target + c, x);
    return;
  }
  float a[V], b[V];
  load_bf16<V>(a, source + channel);
  load_bf16<V>(b, source + channel + half);
  if (place.tensor != 2) {
    const std::int64_t position = rotation.positions[token];
    float cos[V], sin[V];
    if (position >= 0 && position < rotation.table.num_positions) {
      load_angles<V>(cos, rotation.table.cos + position * half + channel);
      load_angles<V>(sin, rotation.table.sin + position * half + channel);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) cos[j] = sin[j] = NAN;
    }
    const float sign = kMerge ? -1.0f : 1.0f;  // the transposed rotation turns the other way
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float first = a[j] * cos[j] - sign * b[j] * sin[j], second = b[j] * cos[j] + sign * a[j] * sin[j];
      a[j] = first;
      b[j] = second;
    }
  }
  store_bf16<V>(target + channel, a);
  store_bf16<V>(target + channel + half, b);
}

template <bool kMerge>
void launch(const char* op, __nv_bfloat16* fused, __nv_bfloat16* q, __nv_bfloat16* k, __nv_bfloat16* v,
            const QkvShape& s, const QkvRotation& rotation, cudaStream_t stream) {
  const std::string name = std::string("cuda::") + op;
  if (s.tokens < 0 || s.heads < 1 || s.groups < 1 || s.heads % s.groups != 0 || s.head_dim < 1)
    throw Error(name + ": tokens " + std::to_string(s.tokens) + ", heads " + std::to_string(s.heads) + ", groups " +
                std::to_string(s.groups) + " and head_dim " + std::to_string(s.head_dim) +
                " must be positive (tokens >= 0) with groups dividing heads");
  const bool rotating = rotation.table.cos != nullptr;
  const std::int64_t rot_dim = rotating ? rotation.table.rot_dim : 0;
  if (rotating && (rot_dim <= 0 || rot_dim % 2 != 0 || rot_dim > s.head_dim || rotation.table.sin == nullptr ||
                   rotation.positions == nullptr))
    throw Error(name + ": the rotation's rot_dim " + std::to_string(rot_dim) +
                " must be even and in (0, head_dim " + std::to_string(s.head_dim) +
                "], with sin and positions on the device");
  if (s.tokens == 0) return;
  const std::int64_t half = rot_dim / 2, rest = s.head_dim - rot_dim;
  const bool packed = half % kPackSize == 0 && rest % kPackSize == 0 && s.head_dim % kPackSize == 0 &&
                      is_pack_aligned(fused) && is_pack_aligned(q) && is_pack_aligned(k) && is_pack_aligned(v);
  const int width = packed ? kPackSize : 1;
  const std::int64_t fused_heads = s.groups * (s.heads / s.groups + 2);
  const std::int64_t total = s.tokens * fused_heads * ((half + rest) / width);
  const std::int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > INT32_MAX) throw Error(name + ": " + std::to_string(total) + " units are too many for one launch");
  if (packed) {
    qkv_heads_kernel<kPackSize, kMerge><<<unsigned(blocks), kThreads, 0, stream>>>(fused, q, k, v, s, rotation, total);
  } else {
    qkv_heads_kernel<1, kMerge><<<unsigned(blocks), kThreads, 0, stream>>>(fused, q, k, v, s, rotation, total);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void split_qkv(__nv_bfloat16* q, __nv_bfloat16* k, __nv_bfloat16* v, const __nv_bfloat16* qkv, const QkvShape& shape,
               const QkvRotation& rotation, cudaStream_t stream) {
  // One kernel serves both directions, so its pointers are not const; the
  // split only reads qkv.
  launch<false>("split_qkv", const_cast<__nv_bfloat16*>(qkv), q, k, v, shape, rotation, stream);
}

void merge_qkv(__nv_bfloat16* dqkv, const __nv_bfloat16* dq, const __nv_bfloat16* dk, const __nv_bfloat16* dv,
               const QkvShape& shape, const QkvRotation& rotation, cudaStream_t stream) {
  // The merge only reads dq, dk and dv.
  launch<true>("merge_qkv", dqkv, const_cast<__nv_bfloat16*>(dq), const_cast<__nv_bfloat16*>(dk),
               const_cast<__nv_bfloat16*>(dv), shape, rotation, stream);
}

}  // namespace moebench::ops::cuda
