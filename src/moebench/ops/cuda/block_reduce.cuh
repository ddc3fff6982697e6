#pragma once
// Sums and maxima over a warp and over a thread block, in a fixed order (so
// a kernel that uses them gives the same bits on every run). The block forms
// need blockDim.x a multiple of 32 (at most 1024) and every thread of the
// block to call them; each returns the result to every thread.
#include <cuda_runtime.h>

namespace moebench::ops::cuda {

__device__ inline float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ inline double warp_sum(double value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ inline float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Reduces each warp, then the warp results in warp 0; `combine` is warp_sum or warp_max.
template <float (*combine)(float)>
__device__ inline float block_reduce(float value, float identity) {
  __shared__ float warp_results[32];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int num_warps = blockDim.x / 32;
  value = combine(value);
  __syncthreads();  // warp_results may still be read by a previous call
  if (lane == 0) warp_results[warp] = value;
  __syncthreads();
  value = lane < num_warps ? warp_results[lane] : identity;
  return combine(value);
}

__device__ inline float block_sum(float value) { return block_reduce<warp_sum>(value, 0.0f); }
__device__ inline float block_max(float value) { return block_reduce<warp_max>(value, -INFINITY); }

}  // namespace moebench::ops::cuda
