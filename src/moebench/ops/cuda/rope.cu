// Rotary position embeddings on the GPU (see ops/rope.h): bf16 activations
// [tokens, heads, head_dim], fp32 cos/sin table [positions, rot_dim / 2] (a
// RopeTable<float> uploaded), fp32 math. With h = rot_dim / 2 and (a, b) the
// input pair of frequency i (half layout: x[i], x[i + h]; interleaved: x[2i], x[2i + 1]):
//   forward   out[i] = a cos - b sin,  out[i + h] = b cos + a sin
//   backward  dx[a] = dout[i] cos + dout[i + h] sin,  dx[b] = dout[i + h] cos - dout[i] sin
// Channels from rot_dim to head_dim pass through unchanged (rotary_percent < 1).
// Kernel (version 1): rope_kernel, one warp per (token, head); lane l owns the
// pairs l, l + 32, ... (at most 4, so rot_dim <= 256), reads all of them, then
// __syncwarp, then writes: the interleaved layout moves channels within a head,
// and reading everything first is what lets out alias x.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1 -c src/moebench/ops/cuda/rope.cu
// Check and time: tests/gpu/rope_test.cpp (RopeTiming.* prints TB/s).
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/rope.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kMaxPairsPerLane = 4;  // rot_dim <= 2 * 32 * 4 = 256

// No __restrict__ on out and in: they may be the same buffer.
__global__ void rope_kernel(__nv_bfloat16* out, const __nv_bfloat16* in, const float* __restrict__ cos_table,
                            const float* __restrict__ sin_table, const int64_t* __restrict__ positions,
                            int64_t num_positions, int64_t rows, int64_t heads, int64_t head_dim, int64_t rot_dim,
                            bool interleaved, bool forward) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;  // (token, head)
  if (row >= rows) return;
  const int lane = threadIdx.x % kWarp;
  const int64_t half = rot_dim / 2;
  const int64_t position = positions[row / heads];
  const bool valid = position >= 0 && position < num_positions;
  const float* cos_row = cos_table + (valid ? position : 0) * half;
  const float* sin_row = sin_table + (valid ? position : 0) * half;
  const __nv_bfloat16* in_head = in + row * head_dim;
  __nv_bfloat16* out_head = out + row * head_dim;

  // Forward reads pair channels (a, b) and writes (i, i + h); backward the reverse.
  float first[kMaxPairsPerLane], second[kMaxPairsPerLane];
#pragma unroll
  for (int k = 0; k < kMaxPairsPerLane; ++k) {
    const int64_t i = lane + int64_t(k) * kWarp;
    if (i >= half) break;
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    first[k] = __bfloat162float(in_head[forward ? a : i]);
    second[k] = __bfloat162float(in_head[forward ? b : i + half]);
  }
  __syncwarp();
#pragma unroll
  for (int k = 0; k < kMaxPairsPerLane; ++k) {
    const int64_t i = lane + int64_t(k) * kWarp;
    if (i >= half) break;
    const float c = valid ? cos_row[i] : NAN;
    const float s = valid ? sin_row[i] : NAN;
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    if (forward) {
      out_head[i] = __float2bfloat16_rn(first[k] * c - second[k] * s);
      out_head[i + half] = __float2bfloat16_rn(second[k] * c + first[k] * s);
    } else {
      out_head[a] = __float2bfloat16_rn(first[k] * c + second[k] * s);
      out_head[b] = __float2bfloat16_rn(second[k] * c - first[k] * s);
    }
  }
  if (out != in) {
    for (int64_t j = rot_dim + lane; j < head_dim; j += kWarp) out_head[j] = in_head[j];
  }
}

void launch_rope(const char* op, __nv_bfloat16* out, const __nv_bfloat16* in, const RopeTableView& table,
                 const int64_t* positions, int64_t tokens, int64_t heads, int64_t head_dim, RopeLayout layout,
                 bool forward, cudaStream_t stream) {
  const std::string name(op);
  if (tokens < 0 || heads < 0)
    throw Error(name + ": tokens " + std::to_string(tokens) + " and heads " + std::to_string(heads) +
                " must be >= 0");
  if (table.rot_dim <= 0 || table.rot_dim % 2 != 0 || table.rot_dim > 2 * kWarp * kMaxPairsPerLane)
    throw Error(name + ": rot_dim " + std::to_string(table.rot_dim) + " must be even and in (0, " +
                std::to_string(2 * kWarp * kMaxPairsPerLane) + "]");
  if (head_dim < table.rot_dim)
    throw Error(name + ": head_dim " + std::to_string(head_dim) + " is smaller than the table's rot_dim " +
                std::to_string(table.rot_dim) + "; build the RopeTable from this head_dim");
  const int64_t rows = tokens * heads;
  if (rows == 0) return;
  if ((rows + kWarpsPerBlock - 1) / kWarpsPerBlock > INT32_MAX)
    throw Error(name + ": " + std::to_string(rows) + " (token, head) rows are too many for one launch");
  rope_kernel<<<unsigned((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), kWarp * kWarpsPerBlock, 0, stream>>>(
      out, in, table.cos, table.sin, positions, table.num_positions, rows, heads, head_dim, table.rot_dim,
      layout == RopeLayout::kInterleaved, forward);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void rope_forward(__nv_bfloat16* out, const __nv_bfloat16* x, const RopeTableView& table,
                  const std::int64_t* positions, std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                  RopeLayout layout, cudaStream_t stream) {
  launch_rope("rope_forward", out, x, table, positions, tokens, heads, head_dim, layout, true, stream);
}

void rope_backward(__nv_bfloat16* dx, const __nv_bfloat16* dout, const RopeTableView& table,
                   const std::int64_t* positions, std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                   RopeLayout layout, cudaStream_t stream) {
  launch_rope("rope_backward", dx, dout, table, positions, tokens, heads, head_dim, layout, false, stream);
}

}  // namespace moebench::ops::cuda
