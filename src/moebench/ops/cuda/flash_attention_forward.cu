// Causal flash attention forward, bf16 in and out, fp32 softmax statistics.
//
//   out[b, s, h, :] = sum_{j <= s} softmax_j(scale * q[b, s, h] . k[b, j, kv(h)]) v[b, j, kv(h)]
//   lse[b, h, s]    = log sum_{j <= s} exp(scale * q[b, s, h] . k[b, j, kv(h)])
//   q [B, S, Hq, Dqk], k [B, S, Hkv, Dqk], v [B, S, Hkv, Dv], out [B, S, Hq, Dv],
//   lse [B, Hq, S] fp32; kv(h) = h / (Hq / Hkv). Head dims 128/128, 192/128, 24/16, 16/16.
//
// version 1 (this file): FlashAttention-2's forward on sm_80-style tensor cores.
//   One block per (query head, 128-row query tile, batch), 8 warps of 16 query
//   rows. The Q tile stays in shared memory; 64-row K and V tiles stream
//   through two cp.async stages up to the diagonal. Each warp computes its
//   16x64 scores with mma.sync m16n8k16 (fp32 accumulate), keeps a running row
//   max and sum (online softmax, in base 2), rescales its fp32 output
//   accumulator and adds P V with P packed to bf16 straight from the score
//   registers. Heaviest query tiles (last rows) are launched first.
// next version: Hopper wgmma with TMA loads and warp specialisation
//   (FlashAttention-3's structure); mma.sync reaches only part of the H100.
//
// Shared memory per block (bf16, rows padded by 8 elements against bank conflicts):
//   Q 128 x (Dqk16 + 8) + 2 stages x 64 x ((Dqk16 + 8) + (Dv + 8)), Dqk16 = Dqk rounded up to 16:
//   104,448 B for 128/128, 137,216 B for 192/128 (raised with cudaFuncSetAttribute).
//
// Build (one file):  nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1
//   --resource-usage -c src/moebench/ops/cuda/flash_attention_forward.cu
// Check and time: moebench_gpu_tests --gtest_filter='Attention*' (AttentionTiming.* print TFLOP/s).
#include "moebench/core/cuda_check.h"
#include "moebench/ops/attention.h"
#include "moebench/ops/cuda/flash_attention_common.cuh"

namespace moebench::ops::cuda {
namespace {

using namespace flash;

template <int kQkDim, int kVDim>
struct ForwardTiles {
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kQueryRows = 16 * kWarps;  // one 16-row mma tile per warp
  static constexpr int kKeyRows = 64;
  static constexpr int kQkPadded = round_up_to_16(kQkDim);
  static constexpr int kQStride = kQkPadded + kSmemRowPad;
  static constexpr int kKStride = kQkPadded + kSmemRowPad;
  static constexpr int kVStride = kVDim + kSmemRowPad;
  static constexpr int kQElements = kQueryRows * kQStride;
  static constexpr int kKElements = kKeyRows * kKStride;
  static constexpr int kVElements = kKeyRows * kVStride;
  static constexpr size_t kSmemBytes = sizeof(bf16) * (kQElements + 2 * (kKElements + kVElements));
  static_assert(kVDim % 16 == 0, "P V runs over pairs of 8-column output tiles");
  static_assert(kVDim <= kQkPadded, "the output is staged in the Q tile's rows");
};

template <int kQkDim, int kVDim>
__global__ void __launch_bounds__(ForwardTiles<kQkDim, kVDim>::kThreads, 1)
    flash_attention_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int seq,
                                   int q_heads, int kv_heads, float scale, float scale_log2) {
  using Tiles = ForwardTiles<kQkDim, kVDim>;
  constexpr int kKeyRows = Tiles::kKeyRows;
  constexpr int kScoreTiles = kKeyRows / 8;  // 8-key mma column tiles per warp
  constexpr int kOutTiles = kVDim / 8;

  extern __shared__ __align__(16) unsigned char shared_bytes[];
  bf16* q_tile = reinterpret_cast<bf16*>(shared_bytes);
  bf16* k_stages = q_tile + Tiles::kQElements;
  bf16* v_stages = k_stages + 2 * Tiles::kKElements;

  const int head = blockIdx.x;
  const int query_tile = gridDim.y - 1 - blockIdx.y;  // longest rows first
  const int batch = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, thread_in_group = lane % 4;

  const HeadRows<kQkDim, kVDim> rows(batch, head, seq, q_heads, kv_heads);
  const int64_t q_row_stride = rows.q_row_stride, k_row_stride = rows.k_row_stride;
  const int64_t v_row_stride = rows.v_row_stride, out_row_stride = rows.out_row_stride;
  const bf16* q_head = q + rows.q_offset;
  const bf16* k_head = k + rows.k_offset;
  const bf16* v_head = v + rows.v_offset;

  const int query0 = query_tile * Tiles::kQueryRows;
  const int warp_query0 = query0 + 16 * warp;  // this thread's rows: warp_query0 + group (+ 8)
  const int key_end = min(seq, query0 + Tiles::kQueryRows);  // later keys are masked for the whole tile
  const int key_tiles = ceil_div(key_end, kKeyRows);

  auto load_key_tile = [&](int key_tile) {
    const int stage = key_tile & 1;
    load_tile_async<kKeyRows, kQkDim, Tiles::kKStride, Tiles::kThreads>(
        k_stages + stage * Tiles::kKElements, k_head, k_row_stride, key_tile * kKeyRows, seq);
    load_tile_async<kKeyRows, kVDim, Tiles::kVStride, Tiles::kThreads>(
        v_stages + stage * Tiles::kVElements, v_head, v_row_stride, key_tile * kKeyRows, seq);
  };
  load_tile_async<Tiles::kQueryRows, kQkDim, Tiles::kQStride, Tiles::kThreads>(q_tile, q_head, q_row_stride, query0,
                                                                                 seq);
  load_key_tile(0);
  cp_async_commit();

  // This lane's ldmatrix addresses: Q as A (the warp's rows), K as B, V as transposed B.
  const uint32_t q_a =
      shared_address(q_tile) + ldmatrix_offset_rows_first(Tiles::kQStride) + 2 * 16 * warp * Tiles::kQStride;
  const uint32_t k_b_stage0 = shared_address(k_stages) + ldmatrix_offset_columns_first(Tiles::kKStride);
  const uint32_t v_bt_stage0 = shared_address(v_stages) + ldmatrix_offset_rows_first(Tiles::kVStride);

  float acc[kOutTiles][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY};  // raw (unscaled) scores, rows group and group + 8
  float row_sum[2] = {0.f, 0.f};              // this thread's columns only until the end

  for (int key_tile = 0; key_tile < key_tiles; ++key_tile) {
    if (key_tile + 1 < key_tiles) load_key_tile(key_tile + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int key0 = key_tile * kKeyRows;
    // A warp whose last row precedes the tile's first key sees none of it.
    if (key0 <= warp_query0 + 15) {
      const uint32_t k_b = k_b_stage0 + (key_tile & 1) * 2 * Tiles::kKElements;
      const uint32_t v_bt = v_bt_stage0 + (key_tile & 1) * 2 * Tiles::kVElements;

      float score[kScoreTiles][4] = {};
#pragma unroll
      for (int kk = 0; kk < Tiles::kQkPadded / 16; ++kk) {
        uint32_t a[4];
        ldmatrix_x4(a, q_a + 2 * 16 * kk);
#pragma unroll
        for (int pair = 0; pair < kScoreTiles / 2; ++pair) {
          uint32_t b[4];
          ldmatrix_x4(b, k_b + 2 * (16 * pair * Tiles::kKStride + 16 * kk));
          mma_bf16_16x8x16(score[2 * pair], a, b[0], b[1]);
          mma_bf16_16x8x16(score[2 * pair + 1], a, b[2], b[3]);
        }
      }

      // Causal mask; it also hides keys at or past seq from every valid row.
      if (key0 + kKeyRows - 1 > warp_query0) {
#pragma unroll
        for (int n = 0; n < kScoreTiles; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = key0 + 8 * n + 2 * thread_in_group + e % 2;
            const int query = warp_query0 + group + e / 2 * 8;
            if (key > query) score[n][e] = -INFINITY;
          }
      }

      // Online softmax: new running max, rescale what was summed under the old one.
      float new_max[2] = {row_max[0], row_max[1]};
#pragma unroll
      for (int n = 0; n < kScoreTiles; ++n) {
        new_max[0] = fmaxf(new_max[0], fmaxf(score[n][0], score[n][1]));
        new_max[1] = fmaxf(new_max[1], fmaxf(score[n][2], score[n][3]));
      }
      float max_scaled[2], correction[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        new_max[r] = fmaxf(new_max[r], __shfl_xor_sync(0xffffffffu, new_max[r], 1));
        new_max[r] = fmaxf(new_max[r], __shfl_xor_sync(0xffffffffu, new_max[r], 2));
        // A row with no visible key yet keeps max -inf; 0 avoids (-inf) - (-inf).
        max_scaled[r] = new_max[r] == -INFINITY ? 0.f : new_max[r] * scale_log2;
        correction[r] = exp2f(row_max[r] * scale_log2 - max_scaled[r]);
        row_max[r] = new_max[r];
        row_sum[r] *= correction[r];
      }
#pragma unroll
      for (int n = 0; n < kScoreTiles; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          score[n][e] = exp2f(score[n][e] * scale_log2 - max_scaled[e / 2]);
          row_sum[e / 2] += score[n][e];
        }
#pragma unroll
      for (int n = 0; n < kOutTiles; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[n][e] *= correction[e / 2];

      // acc += P V: the score C tiles of keys 16kk..16kk+15 are the A tile of P.
#pragma unroll
      for (int kk = 0; kk < kKeyRows / 16; ++kk) {
        const uint32_t a[4] = {pack_bf16x2(score[2 * kk][0], score[2 * kk][1]),
                               pack_bf16x2(score[2 * kk][2], score[2 * kk][3]),
                               pack_bf16x2(score[2 * kk + 1][0], score[2 * kk + 1][1]),
                               pack_bf16x2(score[2 * kk + 1][2], score[2 * kk + 1][3])};
#pragma unroll
        for (int pair = 0; pair < kOutTiles / 2; ++pair) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, v_bt + 2 * (16 * kk * Tiles::kVStride + 16 * pair));
          mma_bf16_16x8x16(acc[2 * pair], a, b[0], b[1]);
          mma_bf16_16x8x16(acc[2 * pair + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the stage just read is the next iteration's load target
  }

  // Every row saw key 0, so its sum is positive.
  float inverse_sum[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
    inverse_sum[r] = 1.f / row_sum[r];
  }

  // Stage the warp's 16 output rows in its own (no longer read) Q rows, then
  // write them out in 16-byte pieces.
  bf16* staged = q_tile + 16 * warp * Tiles::kQStride;
#pragma unroll
  for (int n = 0; n < kOutTiles; ++n) {
    const int column = 8 * n + 2 * thread_in_group;
    *reinterpret_cast<__nv_bfloat162*>(staged + group * Tiles::kQStride + column) =
        __floats2bfloat162_rn(acc[n][0] * inverse_sum[0], acc[n][1] * inverse_sum[0]);
    *reinterpret_cast<__nv_bfloat162*>(staged + (group + 8) * Tiles::kQStride + column) =
        __floats2bfloat162_rn(acc[n][2] * inverse_sum[1], acc[n][3] * inverse_sum[1]);
  }
  __syncwarp();
  bf16* out_head = out + rows.out_offset;
  constexpr int kChunksPerRow = kVDim / 8;
  for (int chunk = lane; chunk < 16 * kChunksPerRow; chunk += 32) {
    const int row = chunk / kChunksPerRow;
    const int column = chunk % kChunksPerRow * 8;
    if (warp_query0 + row < seq)
      *reinterpret_cast<uint4*>(out_head + (warp_query0 + row) * out_row_stride + column) =
          *reinterpret_cast<const uint4*>(staged + row * Tiles::kQStride + column);
  }
  if (thread_in_group == 0) {
    float* lse_head = lse + (int64_t(batch) * q_heads + head) * seq;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int query = warp_query0 + group + 8 * r;
      if (query < seq) lse_head[query] = row_max[r] * scale + logf(row_sum[r]);
    }
  }
}

}  // namespace

void causal_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                              const AttentionShape& shape, std::optional<double> softmax_scale, cudaStream_t stream) {
  constexpr const char* kOp = "cuda::causal_attention_forward";
  const float scale = resolve_softmax_scale(kOp, shape, softmax_scale);
  if (!check_flash_attention_shape(kOp, shape)) return;
  check_aligned(kOp, "out", out);
  check_aligned(kOp, "q", q);
  check_aligned(kOp, "k", k);
  check_aligned(kOp, "v", v);
  dispatch_head_dims(shape, [&]<int kQkDim, int kVDim>() {
    using Tiles = ForwardTiles<kQkDim, kVDim>;
    auto* kernel = flash_attention_forward_kernel<kQkDim, kVDim>;
    MOEBENCH_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Tiles::kSmemBytes)));
    const dim3 grid(unsigned(shape.q_heads), unsigned(ceil_div(shape.seq, Tiles::kQueryRows)), unsigned(shape.batch));
    kernel<<<grid, Tiles::kThreads, Tiles::kSmemBytes, stream>>>(out, lse, q, k, v, int(shape.seq),
                                                                   int(shape.q_heads), int(shape.kv_heads), scale,
                                                                   scale * kLog2e);
    MOEBENCH_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace moebench::ops::cuda
