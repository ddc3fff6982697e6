// Causal flash attention backward for Hopper (sm_90a), bf16 in and out, fp32
// accumulation. Same contract as version 1 (flash_attention_backward.cu,
// declared in ops/attention.h):
//
//   With P = exp(scale * q k^T - lse) (causal) and delta_s = dout_s . out_s:
//   dv = P^T dout,  dS = P * (dout v^T - delta),  dq = scale * dS k,  dk = scale * dS^T q
//   q, dq [B, S, Hq, Dqk]; k, dk [B, S, Hkv, Dqk]; v, dv [B, S, Hkv, Dv];
//   out, dout [B, S, Hq, Dv]; lse [B, Hq, S] fp32. dk, dv sum over the Hq / Hkv
//   query heads of each kv head. Head dims (qk / v) 128/128 and 192/128 only;
//   the others (24/16, 16/16) stay on version 1 and throw here.
//
// version 2 (this file, causal_attention_backward_sm90): FlashAttention-3's
// key-tile-parallel backward, written from the paper's description (Shah et
// al., 2024) on the primitives of sm90_primitives.cuh (those of the sm90
// forward and grouped GEMM). Four launches on the caller's stream, as v1:
//   1. memset of the fp32 dq / dk / dv accumulators; delta = rowsum(dout * out)
//      in fp32 (one warp per row, into the workspace).
//   2. the main kernel, one CTA per (query head, 128-key tile, batch), 384
//      threads = 3 warpgroups: warpgroups 0 and 1 compute (keys 0-63 and
//      64-127 of the tile), warpgroup 2 loads. setmaxnreg: loaders 24
//      registers, math 240.
//      - K and V of the tile are loaded once (TMA) and stay in shared memory.
//        The loader streams 64-row query tiles (Q, dout by TMA from one thread;
//        lse * log2(e) and delta by a second warp with plain loads) from the
//        diagonal to the end through a 2-stage ring (full barrier: the TMA
//        bytes + 32 lane arrivals; empty barrier: one arrival per math warp).
//      - per query tile, each math warpgroup (64 keys, A from shared memory,
//        K-major descriptors as in the forward's S = Q K^T):
//          S^T  = K Q^T      m64n64k16 x Dqk/16   (B = Q tile, K-major)
//          dP^T = V dout^T   m64n64k16 x Dv/16    (B = dout tile, K-major)
//        both in flight together; then in registers
//          P^T  = 2^(S^T * scale * log2e - lse * log2e)   (0 above the diagonal,
//                 masked on the two diagonal query tiles only)
//          dS^T = P^T * (dP^T - delta)
//        packed to bf16 in place (accumulator layout = register-A layout), and
//          dV += P^T dout    register-A m64n128k16 x 4  (B = dout, N-major)
//          dK += dS^T Q      register-A m64n{128,192}k16 x 4 (B = Q, N-major)
//        accumulate in registers across all query tiles (dK 64 or 96, dV 64
//        registers per thread).
//      - dQ = dS K needs both warpgroups' keys: each writes its dS^T (bf16,
//        64 keys x 64 queries, 128-byte swizzle) into one of two alternating
//        shared buffers, one 256-thread named barrier per tile, then each
//        warpgroup computes 64-column chunks of dQ (chunk c by warpgroup c % 2:
//        Dqk 192 gives warpgroup 0 two chunks) with m64n64k16, A = dS read
//        M-major from the dS^T buffer, B = K read N-major. Choice: the fp32
//        chunk is staged in shared memory (two 32-column swizzled boxes, the
//        grouped GEMM's pattern) and added to the fp32 dq accumulator by a TMA
//        reduce-add (the L2 does the adds: no atomics from registers, no read).
//      - GQA choice: one CTA per query head (Hq CTAs per key tile, so Qwen2's
//        4 kv heads still fill 132 SMs and the triangular work balances);
//        at the end each warpgroup stages its fp32 dK and dV (in the shared
//        memory of K, V and the rings, after a 256-thread barrier) and
//        reduce-adds them into the fp32 dk / dv accumulators, where the query
//        heads of a kv head meet.
//      Heaviest key tiles (first keys, most query tiles) are launched first;
//      consecutive CTAs are consecutive query heads, sharing K/V in L2.
//   3. dq, dk (times the softmax scale) and dv converted from fp32 to bf16.
// next: MHA (Hq == Hkv) writing dK/dV as bf16 directly (no memset, reduce,
//   conversion of dk/dv); overlap of the two math warpgroups' phases; a
//   persistent grid; dQ conversion fused into the last writer.
//
// Workspace: v1's layout (causal_attention_backward_workspace_bytes): fp32 dq
//   [B,S,Hq,Dqk], dk [B,S,Hkv,Dqk], dv [B,S,Hkv,Dv], then delta [B,Hq,S].
// Shared memory: see Sm90BackwardConfig: 198,696 B at 128/128, 231,464 B at
//   192/128 (raised with cudaFuncSetAttribute).
// Build (one file):  nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1
//   --resource-usage -c src/moebench/ops/cuda/flash_attention_backward_sm90.cu   (sm_90a only)
// Check and time: moebench_gpu_tests --gtest_filter='Attention*' (BackwardSm90MatchesCpu,
//   AttentionTiming.* print the sm90 backward's TFLOP/s and sm90 forward + backward).
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/attention.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/cuda/flash_attention_common.cuh"
#include "moebench/ops/cuda/sm90_host.cuh"
#include "moebench/ops/cuda/sm90_primitives.cuh"

namespace moebench::ops::cuda {
namespace {

using flash::bf16;

constexpr int kAtomBytes = 1024;  // 8 swizzled rows of 128 bytes
constexpr int kBoxColumns = 64;   // bf16 head-dim columns per box: one 128-byte swizzled row
constexpr int kBoxRowBytes = 128;
constexpr int kStagingColumns = 32;  // fp32 columns per staging box: one 128-byte swizzled row

template <int kQkDim, int kVDim>
struct Sm90BackwardConfig {
  static constexpr int kMathWarpgroups = 2;
  static constexpr int kThreads = 128 * (kMathWarpgroups + 1);
  static constexpr int kKeyRows = 64 * kMathWarpgroups;  // 128 keys per CTA
  static constexpr int kQueryRows = 64;                  // per streamed query tile
  static constexpr int kStages = 2;
  static constexpr int kProducerRegisters = 24;
  static constexpr int kMathRegisters = 240;
  static constexpr int kQkBoxes = kQkDim / kBoxColumns;
  static constexpr int kVBoxes = kVDim / kBoxColumns;
  static constexpr int kKvBoxBytes = kKeyRows * kBoxRowBytes;   // 16 KiB
  static constexpr int kQBoxBytes = kQueryRows * kBoxRowBytes;  // 8 KiB
  static constexpr int kKBytes = kQkBoxes * kKvBoxBytes;
  static constexpr int kVBytes = kVBoxes * kKvBoxBytes;
  static constexpr int kQStageBytes = kQkBoxes * kQBoxBytes;
  static constexpr int kDoStageBytes = kVBoxes * kQBoxBytes;
  static constexpr int kDsBytes = kKeyRows * kBoxRowBytes;       // dS^T: 128 keys x 64 queries bf16
  static constexpr int kStagingBoxBytes = 64 * kBoxRowBytes;     // 64 rows x 32 fp32
  static constexpr int kDqStagingBytes = 2 * kStagingBoxBytes;   // one 64-column chunk of dQ
  // Offsets from the 1024-byte-aligned base.
  static constexpr int kKOffset = 0;
  static constexpr int kVOffset = kKOffset + kKBytes;
  static constexpr int kQOffset = kVOffset + kVBytes;
  static constexpr int kDoOffset = kQOffset + kStages * kQStageBytes;
  static constexpr int kDsOffset = kDoOffset + kStages * kDoStageBytes;
  static constexpr int kDqStagingOffset = kDsOffset + 2 * kDsBytes;  // one per math warpgroup
  static constexpr int kLseOffset = kDqStagingOffset + kMathWarpgroups * kDqStagingBytes;
  static constexpr int kDeltaOffset = kLseOffset + kStages * kQueryRows * 4;
  static constexpr int kBarrierOffset = kDeltaOffset + kStages * kQueryRows * 4;
  // kv_full, then q_full[kStages], q_empty[kStages].
  static constexpr int kBarrierBytes = 8 * (1 + 2 * kStages);
  static constexpr int kSharedBytes = kAtomBytes /* alignment slack */ + kBarrierOffset + kBarrierBytes;
  // Epilogue: each math warpgroup stages its 64 keys of dK and dV in fp32
  // (32-column boxes) over K, V and the Q / dout rings.
  static constexpr int kEpilogueBytes = 64 * 4 * (kQkDim + kVDim);
  // Lanes of the loader's second warp arrive on q_full beside the TMA thread.
  static constexpr int kFullArrivals = 1 + 32;

  static_assert(kQkDim % kBoxColumns == 0 && kVDim % kBoxColumns == 0, "head dims come in 64-column boxes");
  static_assert(kVDim == 128, "dV += P^T dout is one m64n128 wgmma per 16 queries");
  static_assert(kQkDim == 128 || kQkDim == 192, "dK += dS^T Q is one m64n128 or m64n192 wgmma per 16 queries");
  static_assert(kMathWarpgroups * kEpilogueBytes <= kDsOffset, "the dK / dV staging fits over K, V and the rings");
  static_assert(kSharedBytes <= 227 * 1024, "sm_90's per-block shared-memory limit");
  static_assert(128 * kProducerRegisters + 128 * kMathWarpgroups * kMathRegisters <= 65536, "register file");
  static_assert(kMathRegisters % 8 == 0 && kProducerRegisters % 8 == 0, "setmaxnreg takes multiples of 8");
};

struct Sm90BackwardParams {
  const float* lse;    // [B, Hq, S]
  const float* delta;  // [B, Hq, S]
  int seq;
  int q_heads;
  int heads_per_kv;  // q_heads / kv_heads
  float scale_log2;  // scale * log2(e)
};

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// ---- the loader warpgroup ----

// Thread 0 of the warpgroup: K and V once, then Q and dout of each query tile.
template <int kQkDim, int kVDim>
__device__ __forceinline__ void produce_tiles(const CUtensorMap* map_q, const CUtensorMap* map_k,
                                              const CUtensorMap* map_v, const CUtensorMap* map_dout,
                                              std::uint32_t base, int head, int kv_head, int batch, int key0,
                                              int first_tile, int tiles) {
  using Config = Sm90BackwardConfig<kQkDim, kVDim>;
  constexpr int kStages = Config::kStages;
  const std::uint32_t barriers = base + Config::kBarrierOffset;
  const std::uint32_t kv_full = barriers, q_full = barriers + 8, q_empty = q_full + 8 * kStages;
  sm90::prefetch_tensor_map(map_q);
  sm90::prefetch_tensor_map(map_k);
  sm90::prefetch_tensor_map(map_v);
  sm90::prefetch_tensor_map(map_dout);

  sm90::mbarrier_arrive_expect_tx(kv_full, Config::kKBytes + Config::kVBytes);
#pragma unroll
  for (int box = 0; box < Config::kQkBoxes; ++box)
    sm90::tma_load_4d(base + Config::kKOffset + box * Config::kKvBoxBytes, map_k, kv_full, kBoxColumns * box,
                      kv_head, key0, batch);
#pragma unroll
  for (int box = 0; box < Config::kVBoxes; ++box)
    sm90::tma_load_4d(base + Config::kVOffset + box * Config::kKvBoxBytes, map_v, kv_full, kBoxColumns * box,
                      kv_head, key0, batch);

  for (int i = 0; i < tiles; ++i) {
    const int stage = i % kStages;
    const std::uint32_t lap = (i / kStages) & 1;
    const int query0 = (first_tile + i) * Config::kQueryRows;
    sm90::mbarrier_wait(q_empty + 8 * stage, lap ^ 1);  // a fresh barrier passes the first lap
    sm90::mbarrier_arrive_expect_tx(q_full + 8 * stage, Config::kQStageBytes + Config::kDoStageBytes);
    const std::uint32_t q_slot = base + Config::kQOffset + stage * Config::kQStageBytes;
    const std::uint32_t dout_slot = base + Config::kDoOffset + stage * Config::kDoStageBytes;
#pragma unroll
    for (int box = 0; box < Config::kQkBoxes; ++box)
      sm90::tma_load_4d(q_slot + box * Config::kQBoxBytes, map_q, q_full + 8 * stage, kBoxColumns * box, head,
                        query0, batch);
#pragma unroll
    for (int box = 0; box < Config::kVBoxes; ++box)
      sm90::tma_load_4d(dout_slot + box * Config::kQBoxBytes, map_dout, q_full + 8 * stage, kBoxColumns * box,
                        head, query0, batch);
  }
}

// One warp of the loader warpgroup: lse * log2(e) and delta of each query
// tile (rows past seq: lse = +inf, so P = 0 there, and delta = 0).
template <int kQkDim, int kVDim>
__device__ __forceinline__ void produce_row_stats(const Sm90BackwardParams& p, std::uint32_t base, int head,
                                                  int batch, int first_tile, int tiles) {
  using Config = Sm90BackwardConfig<kQkDim, kVDim>;
  constexpr int kStages = Config::kStages;
  const std::uint32_t barriers = base + Config::kBarrierOffset;
  const std::uint32_t q_full = barriers + 8, q_empty = q_full + 8 * kStages;
  const int lane = threadIdx.x % 32;
  const std::int64_t row0 = (static_cast<std::int64_t>(batch) * p.q_heads + head) * p.seq;
  for (int i = 0; i < tiles; ++i) {
    const int stage = i % kStages;
    const std::uint32_t lap = (i / kStages) & 1;
    const int query0 = (first_tile + i) * Config::kQueryRows;
    sm90::mbarrier_wait(q_empty + 8 * stage, lap ^ 1);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = lane + 32 * half;
      const int query = query0 + row;
      const bool valid = query < p.seq;
      const float lse_log2 = valid ? p.lse[row0 + query] * flash::kLog2e : INFINITY;
      const float delta = valid ? p.delta[row0 + query] : 0.f;
      const std::uint32_t offset = 4 * (stage * Config::kQueryRows + row);
      asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + Config::kLseOffset + offset), "f"(lse_log2) : "memory");
      asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + Config::kDeltaOffset + offset), "f"(delta) : "memory");
    }
    sm90::mbarrier_arrive(q_full + 8 * stage);  // release: the stores above before the consumers' reads
  }
}

// ---- the math warpgroups ----

// Stores this warpgroup's 64-row fp32 accumulator columns [0, 8 * kGroups)
// (register i: row 16*warp + lane/4 + 8*((i/2)%2), column 8*(i/4) +
// 2*(lane%4) + i%2) into consecutive 32-column boxes of 64 rows x 128 bytes
// at `staging`, 128-byte swizzle (16-byte chunk c of row r at c ^ (r % 8)):
// a warp's float2 stores of one register pair cover each chunk position
// twice, two wavefronts, the minimum.
template <int kCount>
__device__ __forceinline__ void stage_fp32(std::uint32_t staging, const float (&acc)[kCount], int warp, int lane) {
  const std::uint32_t row_offset = (warp * 16 + lane / 4) * kBoxRowBytes + (lane % 2) * 8;
  const int chunk_bit = (lane % 4) / 2;
#pragma unroll
  for (int j = 0; j < kCount / 4; ++j) {  // column group 8j..8j+7
    const int box = j / (kStagingColumns / 8);
    const int chunk = 2 * (j % (kStagingColumns / 8)) + chunk_bit;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const std::uint32_t address = staging + box * (64 * kBoxRowBytes) + row_offset + half * 8 * kBoxRowBytes +
                                    ((chunk ^ (lane / 4)) * 16);
      asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(acc[4 * j + 2 * half]),
                   "f"(acc[4 * j + 2 * half + 1])
                   : "memory");
    }
  }
}

template <int kQkDim, int kVDim>
__device__ __forceinline__ void consume(const CUtensorMap* map_dq, const CUtensorMap* map_dk,
                                        const CUtensorMap* map_dv, const Sm90BackwardParams& p, std::uint32_t base,
                                        int head, int kv_head, int batch, int key0, int first_tile, int tiles) {
  using Config = Sm90BackwardConfig<kQkDim, kVDim>;
  constexpr int kStages = Config::kStages;
  const std::uint32_t barriers = base + Config::kBarrierOffset;
  const std::uint32_t kv_full = barriers, q_full = barriers + 8, q_empty = q_full + 8 * kStages;
  // The warpgroup index through a shuffle, so that the compiler knows it is
  // warp-uniform and keeps the wgmma descriptors in uniform registers.
  const int warpgroup = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / 128), 0);
  const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const bool elected = threadIdx.x % 128 == 0;
  const int local_barrier = 2 + warpgroup;  // 1: dS^T ready (both warpgroups), 4: epilogue
  // This thread's keys (rows of S^T): key_row and key_row + 8 of the tile.
  const int key_row = 64 * warpgroup + 16 * warp + lane / 4;

  // Descriptors (byte offsets >> 4 are added to the start-address field).
  // K-major A: this warpgroup's 64 rows of K and V (16 KiB boxes of 128 rows).
  const std::uint64_t k_rows =
      sm90::make_smem_descriptor_128b(base + Config::kKOffset + 64 * warpgroup * kBoxRowBytes, 16, kAtomBytes);
  const std::uint64_t v_rows =
      sm90::make_smem_descriptor_128b(base + Config::kVOffset + 64 * warpgroup * kBoxRowBytes, 16, kAtomBytes);
  // K-major B (S^T, dP^T): the Q and dout tiles (8 KiB boxes of 64 rows).
  const std::uint64_t q_k_major = sm90::make_smem_descriptor_128b(base + Config::kQOffset, 16, kAtomBytes);
  const std::uint64_t dout_k_major = sm90::make_smem_descriptor_128b(base + Config::kDoOffset, 16, kAtomBytes);
  // N-major B (dK, dV): 16 query rows per step, the 64-column boxes LBO apart.
  const std::uint64_t q_n_major =
      sm90::make_smem_descriptor_128b(base + Config::kQOffset, Config::kQBoxBytes, kAtomBytes);
  const std::uint64_t dout_n_major =
      sm90::make_smem_descriptor_128b(base + Config::kDoOffset, Config::kQBoxBytes, kAtomBytes);
  // dQ: A = dS read M-major from the dS^T buffer (rows = keys, 64 queries per
  // 128-byte row: one 64-wide block, LBO unused), B = K read N-major (rows =
  // keys, one 64-column box per chunk).
  const std::uint64_t ds_m_major =
      sm90::make_smem_descriptor_128b(base + Config::kDsOffset, Config::kDsBytes, kAtomBytes);
  const std::uint64_t k_n_major =
      sm90::make_smem_descriptor_128b(base + Config::kKOffset, Config::kKvBoxBytes, kAtomBytes);
  const std::uint32_t dq_staging = base + Config::kDqStagingOffset + warpgroup * Config::kDqStagingBytes;

  float dk[kQkDim / 2];
  float dv[kVDim / 2];
#pragma unroll
  for (int i = 0; i < kQkDim / 2; ++i) dk[i] = 0.f;
#pragma unroll
  for (int i = 0; i < kVDim / 2; ++i) dv[i] = 0.f;

  sm90::mbarrier_wait_or_exit(kv_full, 0);

  for (int t = 0; t < tiles; ++t) {
    const int stage = t % kStages;
    const int query0 = (first_tile + t) * Config::kQueryRows;
    sm90::mbarrier_wait_or_exit(q_full + 8 * stage, (t / kStages) & 1);

    // S^T = K Q^T, and dP^T = V dout^T: both in flight at once at Dqk 128;
    // at 192 (dK takes 96 registers) dP^T is issued only once P^T is packed
    // to bf16 (kSerialScores), which keeps 32 fp32 registers fewer alive.
    constexpr bool kSerialScores = kQkDim > 128;
    float s[32], dp[32];
    std::uint32_t pt[4][4], dst[4][4];
    auto issue_dp = [&] {
#pragma unroll
      for (int step = 0; step < kVDim / 16; ++step) {
        const int a_column = (step / 4) * Config::kKvBoxBytes + (step % 4) * 32;
        const int b_column = stage * Config::kDoStageBytes + (step / 4) * Config::kQBoxBytes + (step % 4) * 32;
        sm90::wgmma_m64n64k16_bf16<0, 0>(dp, v_rows + (a_column >> 4), dout_k_major + (b_column >> 4), step > 0);
      }
      sm90::wgmma_commit_group();
    };
    sm90::wgmma_fence();
#pragma unroll
    for (int step = 0; step < kQkDim / 16; ++step) {
      const int a_column = (step / 4) * Config::kKvBoxBytes + (step % 4) * 32;
      const int b_column = stage * Config::kQStageBytes + (step / 4) * Config::kQBoxBytes + (step % 4) * 32;
      sm90::wgmma_m64n64k16_bf16<0, 0>(s, k_rows + (a_column >> 4), q_k_major + (b_column >> 4), step > 0);
    }
    sm90::wgmma_commit_group();
    if constexpr (!kSerialScores) issue_dp();

    // P^T (while dP^T runs). Register i: key key_row + 8*((i/2)%2), query
    // column 8*(i/4) + 2*(lane%4) + i%2 of the tile.
    sm90::wgmma_wait_group<kSerialScores ? 0 : 1>();
    sm90::fence_registers(s);
    const std::uint32_t lse_stage = base + Config::kLseOffset + 4 * stage * Config::kQueryRows;
    const std::uint32_t delta_stage = base + Config::kDeltaOffset + 4 * stage * Config::kQueryRows;
    const bool diagonal = query0 < key0 + Config::kKeyRows;  // the two query tiles that overlap the keys
#pragma unroll
    for (int g = 0; g < 8; ++g) {
      float lse0, lse1;
      asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
                   : "=f"(lse0), "=f"(lse1)
                   : "r"(lse_stage + 4 * (8 * g + 2 * (lane % 4))));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 4 * g + e;
        s[i] = fast_exp2(fmaf(s[i], p.scale_log2, -(e % 2 ? lse1 : lse0)));
      }
    }
    if (diagonal) {
      // key - query = offset + 8*((i/2)%2) - 8*(i/4) - i%2, the rest compile-time.
      const int offset = key0 + key_row - query0 - 2 * (lane % 4);
#pragma unroll
      for (int i = 0; i < 32; ++i)
        if (offset + 8 * ((i / 2) % 2) - 8 * (i / 4) - i % 2 > 0) s[i] = 0.f;
    }
    // Packed in place: the accumulator columns 16j..16j+15 are A's k-step j.
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) pt[j][r] = flash::pack_bf16x2(s[8 * j + 2 * r], s[8 * j + 2 * r + 1]);
    auto issue_dv = [&] {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int row = j * 16 * kBoxRowBytes;
        sm90::wgmma_m64n128k16_bf16_register_a<1>(
            dv, pt[j], dout_n_major + ((stage * Config::kDoStageBytes + row) >> 4), 1);
      }
    };
    if constexpr (kSerialScores) {
      // dV += P^T dout goes with dP^T, so that P^T's registers are free
      // again before dS^T is formed (it reads the bf16 P^T first).
#pragma unroll
      for (int j = 0; j < 4; ++j) sm90::fence_registers(pt[j]);  // s dies here
      sm90::wgmma_fence();
      issue_dv();
      issue_dp();
    }
    sm90::wgmma_wait_group<0>();
    sm90::fence_registers(dp);
#pragma unroll
    for (int g = 0; g < 8; ++g) {
      float delta0, delta1;
      asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
                   : "=f"(delta0), "=f"(delta1)
                   : "r"(delta_stage + 4 * (8 * g + 2 * (lane % 4))));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 4 * g + e;
        float probability;
        if constexpr (kSerialScores) {  // from the packed bf16 P^T (the fp32 one is gone)
          const std::uint32_t pair = pt[i / 8][(i % 8) / 2];
          probability = __uint_as_float(i % 2 ? pair & 0xffff0000u : pair << 16);
        } else {
          probability = s[i];
        }
        dp[i] = probability * (dp[i] - (e % 2 ? delta1 : delta0));
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) dst[j][r] = flash::pack_bf16x2(dp[8 * j + 2 * r], dp[8 * j + 2 * r + 1]);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (!kSerialScores) sm90::fence_registers(pt[j]);  // serial: read by dV already
      sm90::fence_registers(dst[j]);
    }

    // dV += P^T dout, dK += dS^T Q (register A; B N-major, 16 query rows per step).
    sm90::wgmma_fence();
    if constexpr (!kSerialScores) issue_dv();
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = j * 16 * kBoxRowBytes;
      const std::uint64_t q_step = q_n_major + ((stage * Config::kQStageBytes + row) >> 4);
      if constexpr (kQkDim == 128) {
        sm90::wgmma_m64n128k16_bf16_register_a<1>(dk, dst[j], q_step, 1);
      } else {
        sm90::wgmma_m64n192k16_bf16_register_a<1>(dk, dst[j], q_step, 1);
      }
    }
    sm90::wgmma_commit_group();

    // dS^T into buffer t % 2 (rows = keys, 64 query columns = one 128-byte
    // swizzled row): register pair (i, i+1) is 4 bytes of chunk i/4 of row
    // key_row + 8*((i/2)%2); a warp's 8 rows put one chunk on each position.
    const std::uint32_t ds_buffer = base + Config::kDsOffset + (t % 2) * Config::kDsBytes;
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int i = 8 * j + 2 * r;
        const int row = key_row + 8 * ((i / 2) % 2);
        const std::uint32_t address = ds_buffer + row * kBoxRowBytes + ((((i / 4) ^ (row % 8))) * 16) + 4 * (lane % 4);
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(dst[j][r]) : "memory");
      }
    sm90::fence_proxy_async_shared();  // our stores, before the tensor cores read them
    // Both warpgroups' dS^T are written. (Buffer t % 2 was last read by the
    // dQ products of tile t - 2, finished before either side arrived here at
    // tile t - 1.)
    sm90::named_barrier_sync(1, 256);

    sm90::wgmma_wait_group<0>();  // dV, dK done: the Q / dout stage is free, P^T / dS^T registers too
    sm90::fence_registers(dv);
    sm90::fence_registers(dk);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (!kSerialScores) sm90::fence_registers(pt[j]);  // serial: read by dV already
      sm90::fence_registers(dst[j]);
    }
    if (lane == 0) sm90::mbarrier_arrive(q_empty + 8 * stage);

    // dQ (64 queries x 64-column chunk c) = dS K over the 128 keys.
#pragma unroll
    for (int c = 0; c < Config::kQkBoxes; ++c) {
      if (c % 2 != warpgroup) continue;
      float dq[32];
      sm90::wgmma_fence();
#pragma unroll
      for (int step = 0; step < Config::kKeyRows / 16; ++step) {
        const int key_rows = step * 16 * kBoxRowBytes;
        sm90::wgmma_m64n64k16_bf16<1, 1>(dq, ds_m_major + (((t % 2) * Config::kDsBytes + key_rows) >> 4),
                                         k_n_major + ((c * Config::kKvBoxBytes + key_rows) >> 4), step > 0);
      }
      sm90::wgmma_commit_group();
      sm90::wgmma_wait_group<0>();
      sm90::fence_registers(dq);
      if (elected) sm90::bulk_wait_group_read<0>();  // the previous chunk's reduce has read the staging
      sm90::named_barrier_sync(local_barrier, 128);
      stage_fp32(dq_staging, dq, warp, lane);
      sm90::fence_proxy_async_shared();
      sm90::named_barrier_sync(local_barrier, 128);
      if (elected) {
#pragma unroll
        for (int box = 0; box < 2; ++box)
          sm90::tma_reduce_add_4d(map_dq, dq_staging + box * Config::kStagingBoxBytes,
                                  kBoxColumns * c + kStagingColumns * box, head, query0, batch);
        sm90::bulk_commit_group();
      }
    }
  }

  // Epilogue: every product of both warpgroups is done after this barrier, so
  // K, V and the rings are free; warpgroup w stages its dK, dV there.
  sm90::named_barrier_sync(4, 256);
  const std::uint32_t staging = base + warpgroup * Config::kEpilogueBytes;
  constexpr int kDkBoxes = kQkDim / kStagingColumns;
  constexpr int kDvBoxes = kVDim / kStagingColumns;
  stage_fp32(staging, dk, warp, lane);
  stage_fp32(staging + kDkBoxes * Config::kStagingBoxBytes, dv, warp, lane);
  sm90::fence_proxy_async_shared();
  sm90::named_barrier_sync(local_barrier, 128);
  if (elected) {
    const int row0 = key0 + 64 * warpgroup;
    if (row0 < p.seq) {
#pragma unroll
      for (int box = 0; box < kDkBoxes; ++box)
        sm90::tma_reduce_add_4d(map_dk, staging + box * Config::kStagingBoxBytes, kStagingColumns * box, kv_head,
                                row0, batch);
#pragma unroll
      for (int box = 0; box < kDvBoxes; ++box)
        sm90::tma_reduce_add_4d(map_dv, staging + (kDkBoxes + box) * Config::kStagingBoxBytes,
                                kStagingColumns * box, kv_head, row0, batch);
    }
    sm90::bulk_commit_group();
    sm90::bulk_wait_group_read<0>();  // shared memory must outlive every reduce's read (dQ's too)
  }
}

template <int kQkDim, int kVDim>
__global__ void __launch_bounds__(Sm90BackwardConfig<kQkDim, kVDim>::kThreads, 1)
    flash_attention_backward_sm90_kernel(const __grid_constant__ CUtensorMap map_q,
                                         const __grid_constant__ CUtensorMap map_k,
                                         const __grid_constant__ CUtensorMap map_v,
                                         const __grid_constant__ CUtensorMap map_dout,
                                         const __grid_constant__ CUtensorMap map_dq,
                                         const __grid_constant__ CUtensorMap map_dk,
                                         const __grid_constant__ CUtensorMap map_dv, const Sm90BackwardParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Config = Sm90BackwardConfig<kQkDim, kVDim>;
  extern __shared__ unsigned char raw_shared[];
  const std::uint32_t raw = sm90::shared_address(raw_shared);
  const std::uint32_t base = (raw + kAtomBytes - 1) & ~static_cast<std::uint32_t>(kAtomBytes - 1);

  const int head = blockIdx.x;
  const int key_tile = blockIdx.y;  // key tile 0 has the most query tiles: launched first
  const int batch = blockIdx.z;
  const int kv_head = head / p.heads_per_kv;
  const int key0 = key_tile * Config::kKeyRows;
  const int first_tile = key0 / Config::kQueryRows;  // earlier queries see none of these keys
  const int tiles = (p.seq + Config::kQueryRows - 1) / Config::kQueryRows - first_tile;  // >= 1: key0 < seq

  if (threadIdx.x == 0) {
    const std::uint32_t barriers = base + Config::kBarrierOffset;
    sm90::mbarrier_init(barriers, 1);  // kv_full: the producer's arrive.expect_tx
    for (int s = 0; s < Config::kStages; ++s) {
      sm90::mbarrier_init(barriers + 8 * (1 + s), Config::kFullArrivals);                           // q_full
      sm90::mbarrier_init(barriers + 8 * (1 + Config::kStages + s), 4 * Config::kMathWarpgroups);  // q_empty
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();

  if (threadIdx.x / 128 == Config::kMathWarpgroups) {
    sm90::warpgroup_release_registers<Config::kProducerRegisters>();
    const int producer_thread = threadIdx.x - 128 * Config::kMathWarpgroups;
    if (producer_thread == 0) {
      produce_tiles<kQkDim, kVDim>(&map_q, &map_k, &map_v, &map_dout, base, head, kv_head, batch, key0, first_tile,
                                   tiles);
    } else if (producer_thread / 32 == 1) {
      produce_row_stats<kQkDim, kVDim>(p, base, head, batch, first_tile, tiles);
    }
  } else {
    sm90::warpgroup_claim_registers<Config::kMathRegisters>();
    if (threadIdx.x % 128 == 0) {  // the threads that issue the reduce-adds
      sm90::prefetch_tensor_map(&map_dq);
      sm90::prefetch_tensor_map(&map_dk);
      sm90::prefetch_tensor_map(&map_dv);
    }
    consume<kQkDim, kVDim>(&map_dq, &map_dk, &map_dv, p, base, head, kv_head, batch, key0, first_tile, tiles);
  }
#else
  __trap();  // built for sm_90a only
#endif
}

// ---- preprocessing and conversion ----

// delta[b, h, s] = sum_d dout[b, s, h, d] * out[b, s, h, d] in fp32, one warp
// per (b, s, h) row (memory order), kDim a multiple of 8 * 32 / 2.
template <int kDim>
__global__ void sm90_backward_delta_kernel(float* delta, const bf16* dout, const bf16* out, int seq, int q_heads,
                                           std::int64_t rows) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float sum = 0.f;
  for (int column = 8 * lane; column < kDim; column += 8 * 32) {
    float a[8], b[8];
    load_pack(a, dout + row * kDim + column);
    load_pack(b, out + row * kDim + column);
#pragma unroll
    for (int i = 0; i < 8; ++i) sum = fmaf(a[i], b[i], sum);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) {
    const std::int64_t head = row % q_heads, position = row / q_heads % seq, b = row / q_heads / seq;
    delta[(b * q_heads + head) * seq + position] = sum;
  }
}

// out[i] = bf16(scale * in[i]); count is a multiple of 8.
__global__ void sm90_backward_convert_kernel(bf16* out, const float* in, std::int64_t count, float scale) {
  for (std::int64_t i = 8 * (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x); i < count;
       i += 8 * static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float4 low = *reinterpret_cast<const float4*>(in + i);
    const float4 high = *reinterpret_cast<const float4*>(in + i + 4);
    const float values[8] = {scale * low.x,  scale * low.y,  scale * low.z,  scale * low.w,
                             scale * high.x, scale * high.y, scale * high.z, scale * high.w};
    store_pack(out + i, values);
  }
}

void launch_convert(bf16* out, const float* in, std::int64_t count, float scale, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(std::min<std::int64_t>((count / 8 + kThreads - 1) / kThreads, 4096));
  sm90_backward_convert_kernel<<<blocks, kThreads, 0, stream>>>(out, in, count, scale);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

// ---- host side ----

// One head-strided [B, S, H, D] tensor as a 4-D map (D innermost, then H, S,
// B), box `box_columns` (128 bytes) x 1 head x `box_rows` x 1, 128-byte
// swizzle. Rows past S load as zeros and are skipped by reduce-adds.
// (The forward's head_map, extended to fp32.)
CUtensorMap head_map(const void* base, CUtensorMapDataType type, int element_bytes, const AttentionShape& shape,
                     std::int64_t heads, std::int64_t dim, int box_columns, int box_rows) {
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(dim), static_cast<cuuint64_t>(heads),
                              static_cast<cuuint64_t>(shape.seq), static_cast<cuuint64_t>(shape.batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(dim * element_bytes),
                                 static_cast<cuuint64_t>(heads * dim * element_bytes),
                                 static_cast<cuuint64_t>(shape.seq * heads * dim * element_bytes)};
  const cuuint32_t box[4] = {static_cast<cuuint32_t>(box_columns), 1, static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  CUtensorMap map;
  const CUresult result = tensor_map_encoder()(
      &map, type, 4, const_cast<void*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
      CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS)
    throw Error("cuda::causal_attention_backward_sm90: cuTensorMapEncodeTiled failed, code " +
                std::to_string(result));
  return map;
}

CUtensorMap bf16_map(const void* base, const AttentionShape& shape, std::int64_t heads, std::int64_t dim,
                     int box_rows) {
  return head_map(base, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, shape, heads, dim, kBoxColumns, box_rows);
}

CUtensorMap fp32_map(const float* base, const AttentionShape& shape, std::int64_t heads, std::int64_t dim) {
  return head_map(base, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, shape, heads, dim, kStagingColumns, 64);
}

struct Sm90Workspace {
  float* dq;     // [B, S, Hq, Dqk]
  float* dk;     // [B, S, Hkv, Dqk]
  float* dv;     // [B, S, Hkv, Dv]
  float* delta;  // [B, Hq, S]
  std::int64_t dq_count, dk_count, dv_count;
};

// v1's layout (flash_attention_backward.cu, carve_workspace), which
// causal_attention_backward_workspace_bytes sizes.
Sm90Workspace carve_workspace(void* base, const AttentionShape& s) {
  Sm90Workspace w{};
  w.dq_count = s.batch * s.seq * s.q_heads * s.qk_head_dim;
  w.dk_count = s.batch * s.seq * s.kv_heads * s.qk_head_dim;
  w.dv_count = s.batch * s.seq * s.kv_heads * s.v_head_dim;
  w.dq = static_cast<float*>(base);
  w.dk = w.dq + w.dq_count;  // counts are multiples of 8: every part stays 16-byte aligned
  w.dv = w.dk + w.dk_count;
  w.delta = w.dv + w.dv_count;
  return w;
}

template <int kQkDim, int kVDim>
void launch_sm90_backward(const Sm90Workspace& w, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                          const float* lse, const AttentionShape& shape, float scale, cudaStream_t stream) {
  using Config = Sm90BackwardConfig<kQkDim, kVDim>;
  const auto kernel = flash_attention_backward_sm90_kernel<kQkDim, kVDim>;
  allow_dynamic_shared_memory(kernel, Config::kSharedBytes);
  const CUtensorMap map_q = bf16_map(q, shape, shape.q_heads, kQkDim, Config::kQueryRows);
  const CUtensorMap map_k = bf16_map(k, shape, shape.kv_heads, kQkDim, Config::kKeyRows);
  const CUtensorMap map_v = bf16_map(v, shape, shape.kv_heads, kVDim, Config::kKeyRows);
  const CUtensorMap map_dout = bf16_map(dout, shape, shape.q_heads, kVDim, Config::kQueryRows);
  const CUtensorMap map_dq = fp32_map(w.dq, shape, shape.q_heads, kQkDim);
  const CUtensorMap map_dk = fp32_map(w.dk, shape, shape.kv_heads, kQkDim);
  const CUtensorMap map_dv = fp32_map(w.dv, shape, shape.kv_heads, kVDim);
  const Sm90BackwardParams params{lse,
                                  w.delta,
                                  static_cast<int>(shape.seq),
                                  static_cast<int>(shape.q_heads),
                                  static_cast<int>(shape.q_heads / shape.kv_heads),
                                  scale * flash::kLog2e};
  const dim3 grid(static_cast<unsigned>(shape.q_heads),
                  static_cast<unsigned>(flash::ceil_div(shape.seq, Config::kKeyRows)),
                  static_cast<unsigned>(shape.batch));
  kernel<<<grid, Config::kThreads, Config::kSharedBytes, stream>>>(map_q, map_k, map_v, map_dout, map_dq, map_dk,
                                                                     map_dv, params);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void causal_attention_backward_sm90(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                                    const bf16* v, const bf16* out, const float* lse, void* workspace,
                                    const AttentionShape& shape, std::optional<double> softmax_scale,
                                    cudaStream_t stream) {
  constexpr const char* kOp = "cuda::causal_attention_backward_sm90";
  const float scale = flash::resolve_softmax_scale(kOp, shape, softmax_scale);
  if (!flash::check_flash_attention_shape(kOp, shape)) return;
  const bool is_128_128 = flash::hopper_head_dims_are_128(kOp, shape, "cuda::causal_attention_backward");
  flash::check_aligned(kOp, "dq", dq);
  flash::check_aligned(kOp, "dk", dk);
  flash::check_aligned(kOp, "dv", dv);
  flash::check_aligned(kOp, "dout", dout);
  flash::check_aligned(kOp, "q", q);
  flash::check_aligned(kOp, "k", k);
  flash::check_aligned(kOp, "v", v);
  flash::check_aligned(kOp, "out", out);
  flash::check_aligned(kOp, "workspace", workspace);
  if (lse == nullptr) throw Error(std::string(kOp) + ": lse is null");
  require_hopper(kOp);

  const Sm90Workspace w = carve_workspace(workspace, shape);
  MOEBENCH_CUDA_CHECK(
      cudaMemsetAsync(w.dq, 0, sizeof(float) * static_cast<std::size_t>(w.dq_count + w.dk_count + w.dv_count),
                      stream));
  {
    constexpr int kDeltaWarps = 8;
    const std::int64_t rows = shape.batch * shape.seq * shape.q_heads;
    sm90_backward_delta_kernel<128><<<static_cast<unsigned>((rows + kDeltaWarps - 1) / kDeltaWarps),
                                      32 * kDeltaWarps, 0, stream>>>(w.delta, dout, out, static_cast<int>(shape.seq),
                                                                     static_cast<int>(shape.q_heads), rows);
    MOEBENCH_CUDA_CHECK(cudaGetLastError());
  }
  if (is_128_128) {
    launch_sm90_backward<128, 128>(w, dout, q, k, v, lse, shape, scale, stream);
  } else {
    launch_sm90_backward<192, 128>(w, dout, q, k, v, lse, shape, scale, stream);
  }
  launch_convert(dq, w.dq, w.dq_count, scale, stream);
  launch_convert(dk, w.dk, w.dk_count, scale, stream);
  launch_convert(dv, w.dv, w.dv_count, 1.f, stream);
}

}  // namespace moebench::ops::cuda
