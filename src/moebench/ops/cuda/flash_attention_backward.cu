// Causal flash attention backward, bf16 in and out, fp32 accumulation.
//
//   With P = exp(scale * q k^T - lse) (causal) and delta_s = dout_s . out_s:
//   dv = P^T dout,  dS = P * (dout v^T - delta),  dq = scale * dS k,  dk = scale * dS^T q
//   q, dq [B, S, Hq, Dqk]; k, dk [B, S, Hkv, Dqk]; v, dv [B, S, Hkv, Dv];
//   out, dout [B, S, Hq, Dv]; lse [B, Hq, S] fp32. dk, dv sum over the Hq / Hkv
//   query heads of each kv head. Head dims 128/128, 192/128, 24/16, 16/16.
//
// version 1 (this file): FlashAttention-2's backward on sm_80-style tensor cores,
//   in four launches on the caller's stream:
//   1. delta[b, h, s] = rowsum(dout * out) in fp32 (one warp per row); the fp32
//      accumulators of the workspace are zeroed by a memset before it.
//   2. the main kernel: one block per (query head, 128-key tile, batch), 8 warps
//      of 16 keys. K and V of the tile stay in shared memory; Q, dout, lse and
//      delta tiles of Br query rows (32 for Dqk 128 and 192, 64 for 24/16,
//      128 for 16/16: what keeps dK, dV, P^T and dS^T in registers) stream
//      through two cp.async stages from the diagonal to the end. Each warp
//      recomputes its 16 x Br block of P^T and dP^T with mma.sync m16n8k16,
//      accumulates dV += P^T dout and dK += dS^T q in registers, and writes
//      dS^T (bf16) to shared memory, from which all warps compute dQ += dS K for the
//      query tile and add it with fp32 float2 atomics into the dq accumulator.
//      GQA: each block serves one query head, so the blocks of a kv head's
//      query heads meet in the fp32 dk / dv accumulators, also by atomics, once
//      per block (this keeps Hq blocks in flight instead of Hkv; Qwen2's 4 kv
//      heads would leave most of the GPU idle otherwise).
//   3. dq, dk (times the softmax scale) and dv converted from fp32 to bf16.
//   Heaviest key tiles (first keys, most query rows) are launched first.
// next version: Hopper wgmma with TMA loads and warp specialisation
//   (FlashAttention-3's backward), and dQ written without atomics.
//
// Workspace (causal_attention_backward_workspace_bytes): fp32 dq [B,S,Hq,Dqk],
//   dk [B,S,Hkv,Dqk], dv [B,S,Hkv,Dv], then delta [B,Hq,S].
// Shared memory of the main kernel (bf16 rows padded by 8 elements):
//   K 128 x (Dqk16+8) + V 128 x (Dv+8) + 2 stages x Br x ((Dqk16+8) + (Dv+8))
//   + dS^T 128 x (Br+8) + 4 Br floats: 115,200 B for 128/128, 139,776 B for
//   192/128, 52,224 B for 24/16, 73,728 B for 16/16.
//
// Build (one file):  nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1
//   --resource-usage -c src/moebench/ops/cuda/flash_attention_backward.cu
// Check and time: moebench_gpu_tests --gtest_filter='Attention*' (AttentionTiming.* print TFLOP/s).
#include <algorithm>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/attention.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/cuda/flash_attention_common.cuh"

namespace moebench::ops::cuda {
namespace {

using namespace flash;

template <int kQkDim, int kVDim>
struct BackwardTiles {
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kKeyRows = 16 * kWarps;  // one 16-key mma tile per warp
  static constexpr int kQkPadded = round_up_to_16(kQkDim);
  // As many query rows as leave dK, dV, P^T and dS^T in registers without
  // spilling (64 rows at 128/128 spill a few bytes; --resource-usage shows it).
  static constexpr int kQueryRows = kQkPadded >= 128 ? 32 : kQkPadded == 32 ? 64 : 128;
  static constexpr int kKStride = kQkPadded + kSmemRowPad;
  static constexpr int kVStride = kVDim + kSmemRowPad;
  static constexpr int kQStride = kQkPadded + kSmemRowPad;
  static constexpr int kDoStride = kVDim + kSmemRowPad;
  static constexpr int kDsStride = kQueryRows + kSmemRowPad;
  static constexpr int kKElements = kKeyRows * kKStride;
  static constexpr int kVElements = kKeyRows * kVStride;
  static constexpr int kQElements = kQueryRows * kQStride;
  static constexpr int kDoElements = kQueryRows * kDoStride;
  static constexpr int kDsElements = kKeyRows * kDsStride;
  static constexpr size_t kSmemBytes =
      sizeof(float) * 4 * kQueryRows +
      sizeof(bf16) * (kKElements + kVElements + 2 * (kQElements + kDoElements) + kDsElements);
  // dQ of a query tile: 16-row groups x column slices, one per warp.
  static constexpr int kDqRowGroups = kQueryRows / 16;
  static constexpr int kDqColumns = kQkPadded / (kWarps / kDqRowGroups);
  static_assert(kWarps % kDqRowGroups == 0 && kDqColumns * (kWarps / kDqRowGroups) == kQkPadded);
  static_assert(kDqColumns % 16 == 0 && kVDim % 16 == 0, "products run over pairs of 8-column tiles");
  static_assert(2 * kQueryRows <= kThreads, "one thread per lse and delta entry");
};

template <int kVDim>
__global__ void attention_backward_delta_kernel(float* delta, const bf16* dout, const bf16* out, int seq,
                                                int q_heads, int64_t rows) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;  // (b, s, h) in memory order
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float sum = 0.f;
  for (int column = kPackSize * lane; column < kVDim; column += kPackSize * 32) {
    float dout_values[kPackSize], out_values[kPackSize];
    load_pack(dout_values, dout + row * kVDim + column);
    load_pack(out_values, out + row * kVDim + column);
#pragma unroll
    for (int i = 0; i < kPackSize; ++i) sum += dout_values[i] * out_values[i];
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) {
    const int64_t head = row % q_heads, position = row / q_heads % seq, batch = row / q_heads / seq;
    delta[(batch * q_heads + head) * seq + position] = sum;
  }
}

template <int kQkDim, int kVDim>
__global__ void __launch_bounds__(BackwardTiles<kQkDim, kVDim>::kThreads, 1)
    flash_attention_backward_kernel(float* dq_accum, float* dk_accum, float* dv_accum, const bf16* dout,
                                    const bf16* q, const bf16* k, const bf16* v, const float* lse,
                                    const float* delta, int seq, int q_heads, int kv_heads, float scale_log2) {
  using Tiles = BackwardTiles<kQkDim, kVDim>;
  constexpr int kQueryRows = Tiles::kQueryRows;
  constexpr int kScoreTiles = kQueryRows / 8;  // a warp's P^T: 16 keys x kQueryRows queries
  constexpr int kDkTiles = Tiles::kQkPadded / 8;
  constexpr int kDvTiles = kVDim / 8;
  constexpr int kDqTiles = Tiles::kDqColumns / 8;

  extern __shared__ __align__(16) unsigned char shared_bytes[];
  float* lse_stages = reinterpret_cast<float*>(shared_bytes);
  float* delta_stages = lse_stages + 2 * kQueryRows;
  bf16* k_tile = reinterpret_cast<bf16*>(delta_stages + 2 * kQueryRows);
  bf16* v_tile = k_tile + Tiles::kKElements;
  bf16* q_stages = v_tile + Tiles::kVElements;
  bf16* dout_stages = q_stages + 2 * Tiles::kQElements;
  bf16* ds_tile = dout_stages + 2 * Tiles::kDoElements;  // dS^T [keys][queries], bf16

  const int head = blockIdx.x;
  const int key_tile = blockIdx.y;
  const int batch = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, thread_in_group = lane % 4;

  const HeadRows<kQkDim, kVDim> rows(batch, head, seq, q_heads, kv_heads);
  const int64_t q_row_stride = rows.q_row_stride, k_row_stride = rows.k_row_stride;
  const int64_t v_row_stride = rows.v_row_stride, dout_row_stride = rows.out_row_stride;
  const bf16* q_head = q + rows.q_offset;
  const bf16* dout_head = dout + rows.out_offset;
  const bf16* k_head = k + rows.k_offset;
  const bf16* v_head = v + rows.v_offset;
  const float* lse_head = lse + (int64_t(batch) * q_heads + head) * seq;
  const float* delta_head = delta + (int64_t(batch) * q_heads + head) * seq;
  float* dq_head = dq_accum + rows.q_offset;
  float* dk_head = dk_accum + rows.k_offset;
  float* dv_head = dv_accum + rows.v_offset;

  const int key0 = key_tile * Tiles::kKeyRows;
  const int warp_key0 = key0 + 16 * warp;  // this thread's keys: warp_key0 + group (+ 8)
  const int first_query_tile = key0 / kQueryRows;  // earlier queries see none of these keys
  const int query_tiles = ceil_div(seq, kQueryRows);

  auto load_query_tile = [&](int query_tile) {
    const int stage = (query_tile - first_query_tile) & 1;
    const int query0 = query_tile * kQueryRows;
    load_tile_async<kQueryRows, kQkDim, Tiles::kQStride, Tiles::kThreads>(q_stages + stage * Tiles::kQElements,
                                                                          q_head, q_row_stride, query0, seq);
    load_tile_async<kQueryRows, kVDim, Tiles::kDoStride, Tiles::kThreads>(
        dout_stages + stage * Tiles::kDoElements, dout_head, dout_row_stride, query0, seq);
    load_row_stat_async(lse_stages + stage * kQueryRows, lse_head + query0, kQueryRows, seq - query0, threadIdx.x);
    load_row_stat_async(delta_stages + stage * kQueryRows, delta_head + query0, kQueryRows, seq - query0,
                        int(threadIdx.x) - kQueryRows);
  };
  load_tile_async<Tiles::kKeyRows, kQkDim, Tiles::kKStride, Tiles::kThreads>(k_tile, k_head, k_row_stride, key0, seq);
  load_tile_async<Tiles::kKeyRows, kVDim, Tiles::kVStride, Tiles::kThreads>(v_tile, v_head, v_row_stride, key0, seq);
  load_query_tile(first_query_tile);
  cp_async_commit();

  const int dq_row_group = warp % Tiles::kDqRowGroups;
  const int dq_column0 = warp / Tiles::kDqRowGroups * Tiles::kDqColumns;
  // This lane's ldmatrix addresses: K and V as A (the warp's keys), Q and dout
  // as B and as transposed B, dS^T as transposed A and K as transposed B (dQ).
  const uint32_t k_a = shared_address(k_tile) + ldmatrix_offset_rows_first(Tiles::kKStride) +
                       2 * 16 * warp * Tiles::kKStride;
  const uint32_t v_a = shared_address(v_tile) + ldmatrix_offset_rows_first(Tiles::kVStride) +
                       2 * 16 * warp * Tiles::kVStride;
  const uint32_t q_b_stage0 = shared_address(q_stages) + ldmatrix_offset_columns_first(Tiles::kQStride);
  const uint32_t q_bt_stage0 = shared_address(q_stages) + ldmatrix_offset_rows_first(Tiles::kQStride);
  const uint32_t dout_b_stage0 = shared_address(dout_stages) + ldmatrix_offset_columns_first(Tiles::kDoStride);
  const uint32_t dout_bt_stage0 = shared_address(dout_stages) + ldmatrix_offset_rows_first(Tiles::kDoStride);
  const uint32_t ds_at =
      shared_address(ds_tile) + ldmatrix_offset_columns_first(Tiles::kDsStride) + 2 * 16 * dq_row_group;
  const uint32_t k_bt = shared_address(k_tile) + ldmatrix_offset_rows_first(Tiles::kKStride) + 2 * dq_column0;

  float dk[kDkTiles][4] = {};
  float dv[kDvTiles][4] = {};

  for (int query_tile = first_query_tile; query_tile < query_tiles; ++query_tile) {
    if (query_tile + 1 < query_tiles) load_query_tile(query_tile + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int stage = (query_tile - first_query_tile) & 1;
    const int query0 = query_tile * kQueryRows;
    const uint32_t q_b = q_b_stage0 + stage * 2 * Tiles::kQElements;
    const uint32_t q_bt = q_bt_stage0 + stage * 2 * Tiles::kQElements;
    const uint32_t dout_b = dout_b_stage0 + stage * 2 * Tiles::kDoElements;
    const uint32_t dout_bt = dout_bt_stage0 + stage * 2 * Tiles::kDoElements;
    const float* lse_tile = lse_stages + stage * kQueryRows;
    const float* delta_tile = delta_stages + stage * kQueryRows;

    // P^T = exp(scale K Q^T - lse) for the warp's 16 keys; 0 where query < key or query >= seq.
    float prob[kScoreTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < Tiles::kQkPadded / 16; ++kk) {
      uint32_t a[4];
      ldmatrix_x4(a, k_a + 2 * 16 * kk);
#pragma unroll
      for (int pair = 0; pair < kScoreTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4(b, q_b + 2 * (16 * pair * Tiles::kQStride + 16 * kk));
        mma_bf16_16x8x16(prob[2 * pair], a, b[0], b[1]);
        mma_bf16_16x8x16(prob[2 * pair + 1], a, b[2], b[3]);
      }
    }
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int query_in_tile = 8 * n + 2 * thread_in_group + e % 2;
        const int query = query0 + query_in_tile;
        const int key = warp_key0 + group + e / 2 * 8;
        prob[n][e] = key <= query && query < seq
                         ? exp2f(prob[n][e] * scale_log2 - lse_tile[query_in_tile] * kLog2e)
                         : 0.f;
      }

    // dS^T = P^T * (V dout^T - delta)
    float dscore[kScoreTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kVDim / 16; ++kk) {
      uint32_t a[4];
      ldmatrix_x4(a, v_a + 2 * 16 * kk);
#pragma unroll
      for (int pair = 0; pair < kScoreTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4(b, dout_b + 2 * (16 * pair * Tiles::kDoStride + 16 * kk));
        mma_bf16_16x8x16(dscore[2 * pair], a, b[0], b[1]);
        mma_bf16_16x8x16(dscore[2 * pair + 1], a, b[2], b[3]);
      }
    }
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dscore[n][e] = prob[n][e] * (dscore[n][e] - delta_tile[8 * n + 2 * thread_in_group + e % 2]);

    // dV += P^T dout and dK += dS^T Q: the C tiles of queries 16kk..16kk+15 are A tiles.
#pragma unroll
    for (int kk = 0; kk < kQueryRows / 16; ++kk) {
      const uint32_t a[4] = {pack_bf16x2(prob[2 * kk][0], prob[2 * kk][1]),
                             pack_bf16x2(prob[2 * kk][2], prob[2 * kk][3]),
                             pack_bf16x2(prob[2 * kk + 1][0], prob[2 * kk + 1][1]),
                             pack_bf16x2(prob[2 * kk + 1][2], prob[2 * kk + 1][3])};
#pragma unroll
      for (int pair = 0; pair < kDvTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, dout_bt + 2 * (16 * kk * Tiles::kDoStride + 16 * pair));
        mma_bf16_16x8x16(dv[2 * pair], a, b[0], b[1]);
        mma_bf16_16x8x16(dv[2 * pair + 1], a, b[2], b[3]);
      }
    }
#pragma unroll
    for (int kk = 0; kk < kQueryRows / 16; ++kk) {
      const uint32_t a[4] = {pack_bf16x2(dscore[2 * kk][0], dscore[2 * kk][1]),
                             pack_bf16x2(dscore[2 * kk][2], dscore[2 * kk][3]),
                             pack_bf16x2(dscore[2 * kk + 1][0], dscore[2 * kk + 1][1]),
                             pack_bf16x2(dscore[2 * kk + 1][2], dscore[2 * kk + 1][3])};
#pragma unroll
      for (int pair = 0; pair < kDkTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, q_bt + 2 * (16 * kk * Tiles::kQStride + 16 * pair));
        mma_bf16_16x8x16(dk[2 * pair], a, b[0], b[1]);
        mma_bf16_16x8x16(dk[2 * pair + 1], a, b[2], b[3]);
      }
    }

    // dS^T to shared memory: dQ needs every warp's keys.
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
      const int column = 8 * n + 2 * thread_in_group;
      *reinterpret_cast<uint32_t*>(ds_tile + (16 * warp + group) * Tiles::kDsStride + column) =
          pack_bf16x2(dscore[n][0], dscore[n][1]);
      *reinterpret_cast<uint32_t*>(ds_tile + (16 * warp + group + 8) * Tiles::kDsStride + column) =
          pack_bf16x2(dscore[n][2], dscore[n][3]);
    }
    __syncthreads();

    // dQ (this warp's 16 query rows x kDqColumns) += dS K over the 128 keys.
    float dq[kDqTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < Tiles::kKeyRows / 16; ++kk) {
      uint32_t a[4];
      ldmatrix_x4_trans(a, ds_at + 2 * 16 * kk * Tiles::kDsStride);
#pragma unroll
      for (int pair = 0; pair < kDqTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, k_bt + 2 * (16 * kk * Tiles::kKStride + 16 * pair));
        mma_bf16_16x8x16(dq[2 * pair], a, b[0], b[1]);
        mma_bf16_16x8x16(dq[2 * pair + 1], a, b[2], b[3]);
      }
    }
#pragma unroll
    for (int n = 0; n < kDqTiles; ++n) {
      const int column = dq_column0 + 8 * n + 2 * thread_in_group;
      if (column >= kQkDim) continue;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int query = query0 + 16 * dq_row_group + group + 8 * r;
        if (query < seq)
          atomicAdd(reinterpret_cast<float2*>(dq_head + query * q_row_stride + column),
                    make_float2(dq[n][2 * r], dq[n][2 * r + 1]));
      }
    }
    __syncthreads();  // the stage and dS^T just read are overwritten next
  }

  // This query head's share of dK and dV for the block's keys.
#pragma unroll
  for (int n = 0; n < kDkTiles; ++n) {
    const int column = 8 * n + 2 * thread_in_group;
    if (column >= kQkDim) continue;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int key = warp_key0 + group + 8 * r;
      if (key < seq)
        atomicAdd(reinterpret_cast<float2*>(dk_head + key * k_row_stride + column),
                  make_float2(dk[n][2 * r], dk[n][2 * r + 1]));
    }
  }
#pragma unroll
  for (int n = 0; n < kDvTiles; ++n) {
    const int column = 8 * n + 2 * thread_in_group;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int key = warp_key0 + group + 8 * r;
      if (key < seq)
        atomicAdd(reinterpret_cast<float2*>(dv_head + key * v_row_stride + column),
                  make_float2(dv[n][2 * r], dv[n][2 * r + 1]));
    }
  }
}

// out[i] = bf16(scale * in[i]); count is a multiple of kPackSize.
__global__ void scale_to_bf16_kernel(bf16* out, const float* in, int64_t count, float scale) {
  for (int64_t i = kPackSize * (int64_t(blockIdx.x) * blockDim.x + threadIdx.x); i < count;
       i += kPackSize * int64_t(gridDim.x) * blockDim.x) {
    const float4 low = *reinterpret_cast<const float4*>(in + i);
    const float4 high = *reinterpret_cast<const float4*>(in + i + 4);
    const float values[kPackSize] = {scale * low.x,  scale * low.y,  scale * low.z,  scale * low.w,
                                     scale * high.x, scale * high.y, scale * high.z, scale * high.w};
    store_pack(out + i, values);
  }
}

void launch_scale_to_bf16(bf16* out, const float* in, int64_t count, float scale, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int blocks = int(std::min<int64_t>((count / kPackSize + kThreads - 1) / kThreads, 4096));
  scale_to_bf16_kernel<<<blocks, kThreads, 0, stream>>>(out, in, count, scale);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

struct BackwardWorkspace {
  float* dq;     // [B, S, Hq, Dqk]
  float* dk;     // [B, S, Hkv, Dqk]
  float* dv;     // [B, S, Hkv, Dv]
  float* delta;  // [B, Hq, S]
  int64_t dq_count, dk_count, dv_count, delta_count;
};

BackwardWorkspace carve_workspace(void* base, const AttentionShape& s) {
  BackwardWorkspace w{};
  w.dq_count = s.batch * s.seq * s.q_heads * s.qk_head_dim;
  w.dk_count = s.batch * s.seq * s.kv_heads * s.qk_head_dim;
  w.dv_count = s.batch * s.seq * s.kv_heads * s.v_head_dim;
  w.delta_count = s.batch * s.q_heads * s.seq;
  w.dq = static_cast<float*>(base);
  w.dk = w.dq + w.dq_count;  // counts are multiples of 8 (head dims are), so every part stays 16-byte aligned
  w.dv = w.dk + w.dk_count;
  w.delta = w.dv + w.dv_count;
  return w;
}

}  // namespace

std::size_t causal_attention_backward_workspace_bytes(const AttentionShape& shape) {
  check_flash_attention_shape("cuda::causal_attention_backward_workspace_bytes", shape);
  const BackwardWorkspace w = carve_workspace(nullptr, shape);
  return sizeof(float) * std::size_t(w.dq_count + w.dk_count + w.dv_count + w.delta_count);
}

void causal_attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                               const bf16* v, const bf16* out, const float* lse, void* workspace,
                               const AttentionShape& shape, std::optional<double> softmax_scale,
                               cudaStream_t stream) {
  constexpr const char* kOp = "cuda::causal_attention_backward";
  const float scale = resolve_softmax_scale(kOp, shape, softmax_scale);
  if (!check_flash_attention_shape(kOp, shape)) return;
  check_aligned(kOp, "dq", dq);
  check_aligned(kOp, "dk", dk);
  check_aligned(kOp, "dv", dv);
  check_aligned(kOp, "dout", dout);
  check_aligned(kOp, "q", q);
  check_aligned(kOp, "k", k);
  check_aligned(kOp, "v", v);
  check_aligned(kOp, "out", out);
  check_aligned(kOp, "workspace", workspace);
  const BackwardWorkspace w = carve_workspace(workspace, shape);
  MOEBENCH_CUDA_CHECK(
      cudaMemsetAsync(w.dq, 0, sizeof(float) * std::size_t(w.dq_count + w.dk_count + w.dv_count), stream));

  dispatch_head_dims(shape, [&]<int kQkDim, int kVDim>() {
    constexpr int kDeltaWarps = 8;
    const int64_t rows = shape.batch * shape.seq * shape.q_heads;
    attention_backward_delta_kernel<kVDim><<<unsigned((rows + kDeltaWarps - 1) / kDeltaWarps), 32 * kDeltaWarps, 0,
                                             stream>>>(w.delta, dout, out, int(shape.seq), int(shape.q_heads), rows);
    MOEBENCH_CUDA_CHECK(cudaGetLastError());

    using Tiles = BackwardTiles<kQkDim, kVDim>;
    auto* kernel = flash_attention_backward_kernel<kQkDim, kVDim>;
    MOEBENCH_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Tiles::kSmemBytes)));
    const dim3 grid(unsigned(shape.q_heads), unsigned(ceil_div(shape.seq, Tiles::kKeyRows)), unsigned(shape.batch));
    kernel<<<grid, Tiles::kThreads, Tiles::kSmemBytes, stream>>>(w.dq, w.dk, w.dv, dout, q, k, v, lse, w.delta,
                                                                   int(shape.seq), int(shape.q_heads),
                                                                   int(shape.kv_heads), scale * kLog2e);
    MOEBENCH_CUDA_CHECK(cudaGetLastError());
  });

  launch_scale_to_bf16(dq, w.dq, w.dq_count, scale, stream);
  launch_scale_to_bf16(dk, w.dk, w.dk_count, scale, stream);
  launch_scale_to_bf16(dv, w.dv, w.dv_count, 1.f, stream);
}

}  // namespace moebench::ops::cuda
