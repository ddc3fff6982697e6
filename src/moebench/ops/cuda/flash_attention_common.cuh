#pragma once
// What the flash-attention forward and backward kernels share: the warp-level
// tensor-core primitives they are built from (bf16 mma.sync m16n8k16, ldmatrix,
// cp.async with zero fill), the shared-memory tile loader, and the host side's
// shape contract (supported head dims, alignment, grid limits, softmax scale).
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * group + thread_in_group):
//   A 16x16 row-major, 4 regs of bf16x2: (group, 2t) (group+8, 2t) (group, 2t+8) (group+8, 2t+8)
//   B 16x8 "col": 2 regs: (k 2t..2t+1, n group) and (k 2t+8.., n group)
//   C 16x8 f32, 4 floats: (group, 2t) (group, 2t+1) (group+8, 2t) (group+8, 2t+1)
// so a C tile of scores packs straight into an A tile of probabilities.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "moebench/core/error.h"
#include "moebench/ops/attention.h"
#include "moebench/ops/cuda/bf16_pack.cuh"

namespace moebench::ops::cuda::flash {

using bf16 = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;

// Each shared tile row is padded by 16 bytes so the 8 row addresses of an
// ldmatrix 8x8 load fall on 8 different bank quads (no conflicts, no swizzle).
constexpr int kSmemRowPad = 8;

__host__ __device__ constexpr int round_up_to_16(int n) { return (n + 15) / 16 * 16; }

__device__ __forceinline__ void mma_bf16_16x8x16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Four 8x8 bf16 matrices from shared memory; lanes 8i..8i+7 give the row
// addresses of matrix i. Addresses are shared-window bytes, so a loop's
// constant offsets fold into the instruction instead of taking registers.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// As ldmatrix_x4, each matrix transposed on the way: lane l receives elements
// (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4) of the stored matrix.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// Byte offset of this lane's row address when one ldmatrix_x4 reads the 16x16
// block at the origin of a row-major tile with `stride` elements per row.
// Rows first: matrices (rows 0-7, cols 0-7) (rows 8-15, cols 0-7) (rows 0-7,
// cols 8-15) (rows 8-15, cols 8-15). Plain, that is an mma A tile; transposed
// from a [k][n] tile, the B tiles of two n-neighbours (regs 0-1 and 2-3).
__device__ __forceinline__ uint32_t ldmatrix_offset_rows_first(int stride) {
  const int lane = threadIdx.x % 32;
  return 2 * ((lane % 16) * stride + lane / 16 * 8);
}

// Columns first: matrices (rows 0-7, cols 0-7) (rows 0-7, cols 8-15) (rows
// 8-15, cols 0-7) (rows 8-15, cols 8-15). Plain from an [n][k] tile, the B
// tiles of two n-neighbours (regs 0-1 and 2-3); transposed from a [k][m]
// tile, an mma A tile.
__device__ __forceinline__ uint32_t ldmatrix_offset_columns_first(int stride) {
  const int lane = threadIdx.x % 32;
  return 2 * ((lane % 8 + lane / 16 * 8) * stride + lane / 8 % 2 * 8);
}

// 16 bytes global -> shared without registers; zeros when !valid (the source
// address is then not read but must still be a valid pointer).
__device__ __forceinline__ void cp_async_16_or_zero(bf16* smem, const bf16* gmem, bool valid) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(gmem), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_4_or_zero(float* smem, const float* gmem, bool valid) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(address), "l"(gmem), "r"(valid ? 4 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `kPending` of this thread's committed groups are in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ uint32_t pack_bf16x2(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return (uint32_t(__bfloat16_as_ushort(pair.y)) << 16) | __bfloat16_as_ushort(pair.x);
}

// Starts copying rows [row0, row0 + kRows) of one head of a [B, S, H, kDim]
// tensor into a shared tile [kRows][kStride]. `head_rows` points at (b, 0, h, 0);
// consecutive sequence positions are `row_stride` elements apart. Rows at or
// past `seq` and columns kDim..kStride-kSmemRowPad (the head dim rounded up to
// 16 for the mma's k) are zero, so they add nothing to a dot product.
template <int kRows, int kDim, int kStride, int kThreads>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* head_rows, int64_t row_stride, int row0,
                                                int seq) {
  static_assert(kDim % 8 == 0, "rows are copied in 16-byte chunks");
  constexpr int kChunksPerRow = (kStride - kSmemRowPad) / 8;
  for (int chunk = threadIdx.x; chunk < kRows * kChunksPerRow; chunk += kThreads) {
    const int row = chunk / kChunksPerRow;
    const int column = chunk % kChunksPerRow * 8;
    const bool valid = row0 + row < seq && column < kDim;
    const bf16* source = valid ? head_rows + (row0 + row) * row_stride + column : head_rows;
    cp_async_16_or_zero(tile + row * kStride + column, source, valid);
  }
}

// Thread `index` (one of 0..count-1; others do nothing) starts copying one
// float of a per-row statistic (lse, delta) into shared memory; entries at or
// past `valid_count` are zero.
__device__ __forceinline__ void load_row_stat_async(float* stats, const float* source, int count, int valid_count,
                                                    int index) {
  if (index < 0 || index >= count) return;
  const bool valid = index < valid_count;
  cp_async_4_or_zero(stats + index, valid ? source + index : source, valid);
}

// ---- host side ------------------------------------------------------------

inline void check_aligned(const char* op, const char* name, const void* pointer) {
  if (!is_pack_aligned(pointer))
    throw Error(std::string(op) + ": " + name + " must be 16-byte aligned (cudaMalloc'd, offsets in whole rows)");
}

// Throws unless the shape is one the kernels support; returns false when there
// is nothing to compute (batch or seq 0).
inline bool check_flash_attention_shape(const char* op, const AttentionShape& shape) {
  const std::string name(op);
  if (shape.batch < 0 || shape.seq < 0)
    throw Error(name + ": batch " + std::to_string(shape.batch) + " and seq " + std::to_string(shape.seq) +
                " must be >= 0");
  if (shape.q_heads <= 0 || shape.kv_heads <= 0 || shape.q_heads % shape.kv_heads != 0)
    throw Error(name + ": q_heads " + std::to_string(shape.q_heads) + " must be a positive multiple of kv_heads " +
                std::to_string(shape.kv_heads));
  const bool supported = (shape.qk_head_dim == 128 && shape.v_head_dim == 128) ||
                         (shape.qk_head_dim == 192 && shape.v_head_dim == 128) ||
                         (shape.qk_head_dim == 24 && shape.v_head_dim == 16) ||
                         (shape.qk_head_dim == 16 && shape.v_head_dim == 16);
  if (!supported)
    throw Error(name + ": head dims qk " + std::to_string(shape.qk_head_dim) + " / v " +
                std::to_string(shape.v_head_dim) +
                " are not supported; the CUDA kernels support qk/v 128/128, 192/128 (MLA), 24/16 and 16/16");
  // Grid: x = query heads, y = sequence tiles (>= 16 rows each), z = batch.
  if (shape.q_heads > INT_MAX || shape.seq > 65535LL * 16 || shape.batch > 65535)
    throw Error(name + ": q_heads " + std::to_string(shape.q_heads) + ", seq " + std::to_string(shape.seq) +
                " or batch " + std::to_string(shape.batch) +
                " exceeds the launch grid (seq <= 1048560, batch <= 65535)");
  return shape.batch > 0 && shape.seq > 0;
}

// The Hopper kernels implement head dims (qk, v) = (128, 128) and (192, 128):
// true for the first, false for the second; other dims throw, naming the v1
// function `v1_op` that runs them.
inline bool hopper_head_dims_are_128(const char* op, const AttentionShape& shape, const char* v1_op) {
  if (shape.v_head_dim == 128 && (shape.qk_head_dim == 128 || shape.qk_head_dim == 192))
    return shape.qk_head_dim == 128;
  throw Error(std::string(op) + ": head dims qk " + std::to_string(shape.qk_head_dim) + " / v " +
              std::to_string(shape.v_head_dim) + " are not supported by the Hopper kernel (128/128, 192/128); use " +
              v1_op);
}

inline float resolve_softmax_scale(const char* op, const AttentionShape& shape, std::optional<double> softmax_scale) {
  if (softmax_scale && !(*softmax_scale > 0.0))
    throw Error(std::string(op) + ": softmax_scale " + std::to_string(*softmax_scale) +
                " must be positive; leave it unset for 1/sqrt(qk_head_dim)");
  return static_cast<float>(softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.qk_head_dim))));
}

// Calls launch.template operator()<kQkDim, kVDim>() for the shape's head dims
// (already checked by check_flash_attention_shape).
template <typename Launch>
void dispatch_head_dims(const AttentionShape& shape, Launch&& launch) {
  if (shape.qk_head_dim == 128) return launch.template operator()<128, 128>();
  if (shape.qk_head_dim == 192) return launch.template operator()<192, 128>();
  if (shape.qk_head_dim == 24) return launch.template operator()<24, 16>();
  return launch.template operator()<16, 16>();
}

__host__ __device__ constexpr int ceil_div(int64_t a, int b) { return static_cast<int>((a + b - 1) / b); }

// Where one (batch, query head) block's rows lie in the [B, S, heads, dim]
// tensors: the row strides, and the element offsets of the block's head,
// q-side tensors (q, out, dout, dq) at the query head, k-side ones (k, v, dk,
// dv) at its KV group's head.
template <int kQkDim, int kVDim>
struct HeadRows {
  int64_t q_row_stride, k_row_stride, v_row_stride, out_row_stride;
  int64_t q_offset, k_offset, v_offset, out_offset;

  __device__ __forceinline__ HeadRows(int batch, int head, int seq, int q_heads, int kv_heads) {
    const int kv_head = head / (q_heads / kv_heads);
    q_row_stride = int64_t(q_heads) * kQkDim;
    k_row_stride = int64_t(kv_heads) * kQkDim;
    v_row_stride = int64_t(kv_heads) * kVDim;
    out_row_stride = int64_t(q_heads) * kVDim;
    q_offset = int64_t(batch) * seq * q_row_stride + int64_t(head) * kQkDim;
    k_offset = int64_t(batch) * seq * k_row_stride + int64_t(kv_head) * kQkDim;
    v_offset = int64_t(batch) * seq * v_row_stride + int64_t(kv_head) * kVDim;
    out_offset = int64_t(batch) * seq * out_row_stride + int64_t(head) * kVDim;
  }
};

}  // namespace moebench::ops::cuda::flash
