#pragma once
// Eight bf16 values moved as one 16-byte access, the unit of the memory-bound
// kernels (a warp then reads 512 contiguous bytes per instruction), with
// conversion to and from fp32 for the arithmetic. The address must be
// 16-byte aligned: callers check pointers and row widths with is_pack_aligned().
#include <cuda_bf16.h>

#include <cstdint>

namespace moebench::ops::cuda {

constexpr int kPackSize = 8;  // bf16 elements per 16-byte pack

struct alignas(16) Bf16Pack {
  __nv_bfloat162 pairs[kPackSize / 2];
};

__device__ inline void load_pack(float (&out)[kPackSize], const __nv_bfloat16* address) {
  const Bf16Pack pack = *reinterpret_cast<const Bf16Pack*>(address);
#pragma unroll
  for (int k = 0; k < kPackSize / 2; ++k) {
    const float2 pair = __bfloat1622float2(pack.pairs[k]);
    out[2 * k] = pair.x;
    out[2 * k + 1] = pair.y;
  }
}

__device__ inline void store_pack(__nv_bfloat16* address, const float (&values)[kPackSize]) {
  Bf16Pack pack;
#pragma unroll
  for (int k = 0; k < kPackSize / 2; ++k) pack.pairs[k] = __floats2bfloat162_rn(values[2 * k], values[2 * k + 1]);
  *reinterpret_cast<Bf16Pack*>(address) = pack;
}

// True when `pointer` may be read in 16-byte packs.
inline bool is_pack_aligned(const void* pointer) { return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0; }

}  // namespace moebench::ops::cuda

namespace moebench::ops::cuda {

// V consecutive bf16 as fp32: one 16-byte pack for V == kPackSize, else
// element by element (the path for rows whose width or address rules out packs).
template <int V>
__device__ inline void load_bf16(float (&out)[V], const __nv_bfloat16* address) {
  if constexpr (V == kPackSize) {
    load_pack(out, address);
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = __bfloat162float(address[k]);
  }
}

template <int V>
__device__ inline void store_bf16(__nv_bfloat16* address, const float (&values)[V]) {
  if constexpr (V == kPackSize) {
    store_pack(address, values);
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) address[k] = __float2bfloat16_rn(values[k]);
  }
}

}  // namespace moebench::ops::cuda
