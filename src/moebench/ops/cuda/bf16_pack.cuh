#pragma once
// Eight bf16 values moved as one 16-byte access, the unit of the memory-bound
// kernels (a warp then reads 512 contiguous bytes per instruction), with
// conversion to and from fp32 for the arithmetic. The address must be
// 16-byte aligned: callers check pointers and row widths with is_pack_aligned().
#include <cuda_bf16.h>

#include <cstdint>

namespace moebench::ops::cuda {

constexpr int kPackSize = 8;  // bf16 elements per 16-byte pack

// A pack moved as one uint4, so that the access is a single 16-byte vector
// instruction (a struct of four bf16 pairs compiles to four 4-byte ones),
// and kept as loaded (4 registers rather than 8 floats) until it is used.
__device__ inline uint4 load_raw_pack(const __nv_bfloat16* address) {
  return *reinterpret_cast<const uint4*>(address);
}

// bf16 to fp32 is exact: the bf16 bits become the high half of the float.
__device__ inline void unpack(float (&out)[kPackSize], const uint4& raw) {
  const std::uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    out[2 * k] = __uint_as_float(words[k] << 16);
    out[2 * k + 1] = __uint_as_float(words[k] & 0xffff0000u);
  }
}

__device__ inline void load_pack(float (&out)[kPackSize], const __nv_bfloat16* address) {
  unpack(out, load_raw_pack(address));
}

__device__ inline void store_pack(__nv_bfloat16* address, const float (&values)[kPackSize]) {
  std::uint32_t words[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(values[2 * k], values[2 * k + 1]);
    memcpy(&words[k], &pair, sizeof(pair));
  }
  *reinterpret_cast<uint4*>(address) = make_uint4(words[0], words[1], words[2], words[3]);
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
