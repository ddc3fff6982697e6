// Causal flash attention forward for Hopper (sm_90a), bf16 in and out, fp32
// softmax statistics. Same contract as version 1 (flash_attention_forward.cu,
// declared in ops/attention.h):
//
//   out[b, s, h, :] = sum_{j <= s} softmax_j(scale * q[b, s, h] . k[b, j, kv(h)]) v[b, j, kv(h)]
//   lse[b, h, s]    = log sum_{j <= s} exp(scale * q[b, s, h] . k[b, j, kv(h)])
//   q [B, S, Hq, Dqk], k [B, S, Hkv, Dqk], v [B, S, Hkv, Dv], out [B, S, Hq, Dv],
//   lse [B, Hq, S] fp32; kv(h) = h / (Hq / Hkv).
//   Head dims (qk / v) 128/128 (Mixtral, Qwen2) and 192/128 (DeepSeek MLA); the
//   others (24/16, 16/16) stay on version 1 and throw here.
//
// version 2 (this file, causal_attention_forward_sm90): FlashAttention-3's
// structure, written from the paper's description (Shah et al., 2024) on the
// primitives of sm90_primitives.cuh (those of grouped_gemm_sm90.cu).
//   - One CTA per (query head, 128-row query tile, batch), 384 threads = 3
//     warpgroups: warpgroups 0 and 1 compute (query rows 0-63 and 64-127 of
//     the tile), warpgroup 2 loads (one thread issues TMA). setmaxnreg gives
//     the loader 40 registers and each math thread 232.
//     Why 2 x 64 rows and not 3 x 64: a math thread holds the 64 x 128 fp32
//     output (64 registers), the 64 x 128 fp32 scores (64) and the bf16
//     probabilities of the previous key tile (32) at once, ~190 with
//     addresses and statistics; 3 math warpgroups would leave 160 each
//     (4 x 128 threads in 64K registers) and spill. 128-row tiles also divide
//     the proxies' 4096 and keep the causal diagonal's wasted half-tile small.
//   - Shared memory (128-byte swizzle, every box a 1024-byte-aligned run of
//     128-byte rows of 64 head-dim columns, as TMA writes it): Q 128 x Dqk
//     (loaded once), a ring of 2 K stages (128 keys x Dqk) and a separate ring
//     of 2 V stages (128 keys x Dv), each slot with its own "full" mbarrier
//     (the producer's arrive.expect_tx + TMA bytes) and "empty" mbarrier (one
//     arrival per math warp). K and V have separate rings because K_j is done
//     with one product before V_j is (below), so the loader refills K early.
//     128/128: 32 + 64 + 64 KiB = 160 KiB; 192/128: 48 + 96 + 64 = 208 KiB.
//   - S = Q K^T: per 16 of Dqk one wgmma m64n128k16, A = this warpgroup's 64
//     rows of Q (K-major descriptor), B = the K tile (K-major: 128 key rows of
//     64 columns per box). O += P V: per 16 keys one wgmma m64n128k16 with A
//     = P from registers (the score accumulators of those 16 columns packed
//     to bf16 in place) and B = the V tile read N-major (transposed-B
//     descriptor: 16 key rows per step, LBO = the 16 KiB between the two
//     64-column boxes), as the grouped GEMM's data gradient reads its weights.
//   - Online softmax in registers, base 2 with the scale folded into one FFMA
//     per score (p = 2^(s * scale * log2e - max * scale * log2e)); each thread
//     owns 2 rows x 32 columns, rows reduced across the 4 lanes of a quad.
//   - Key tiles run from the diagonal down to key tile 0: only the first (the
//     diagonal, 128-key tiles aligned with the 128-row query tile) is masked,
//     and every row sees a finite maximum at once (key = its query tile's
//     first row is always visible). Keys at or past seq arrive as TMA zeros
//     and lie only in the last diagonal tile, where the mask hides them.
//   - Intra-warpgroup overlap (FlashAttention-3, section 3.2): iteration j
//     issues S_j = Q K_j^T, then O += P_{j-1} V_{j-1}, waits for S_j alone
//     (wait_group 1) and runs the softmax of S_j while the P V product is on
//     the tensor cores; then waits for it, rescales O and packs P_j.
//   - Longest query tiles first (grid y reversed); consecutive CTAs are
//     consecutive heads of one tile, so GQA groups share K/V in L2.
//   - Epilogue: O / rowsum in bf16 is written into this warpgroup's (no longer
//     read) rows of the Q tile, in the same swizzled box layout, and stored by
//     TMA (rows past seq are clipped by the tensor map); lse in fp32 by the
//     quads' first lanes.
// next: ping-pong of the two math warpgroups (named barriers, so one
//   warpgroup's softmax overlaps the other's products), a persistent grid.
//
// Shared memory: see Sm90ForwardConfig (raised with cudaFuncSetAttribute).
// Build (one file):  nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1
//   --resource-usage -c src/moebench/ops/cuda/flash_attention_forward_sm90.cu   (sm_90a only)
// Check and time: moebench_gpu_tests --gtest_filter='Attention*' (ForwardSm90MatchesCpu,
//   AttentionTiming.* print the sm90 forward's TFLOP/s beside v1's).
#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstdint>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/attention.h"
#include "moebench/ops/cuda/flash_attention_common.cuh"
#include "moebench/ops/cuda/sm90_host.cuh"
#include "moebench/ops/cuda/sm90_primitives.cuh"

namespace moebench::ops::cuda {
namespace {

using flash::bf16;

constexpr int kAtomBytes = 1024;  // 8 swizzled rows of 128 bytes
constexpr int kBoxColumns = 64;   // head-dim columns per box: one 128-byte swizzled row
constexpr int kBoxRowBytes = 128;

template <int kQkDim, int kVDim>
struct Sm90ForwardConfig {
  static constexpr int kMathWarpgroups = 2;
  static constexpr int kThreads = 128 * (kMathWarpgroups + 1);
  static constexpr int kQueryRows = 64 * kMathWarpgroups;  // 128
  static constexpr int kKeyRows = 128;                     // = kQueryRows: the last key tile is the diagonal
  static constexpr int kStages = 2;
  static constexpr int kProducerRegisters = 40;
  static constexpr int kMathRegisters = 232;
  static constexpr int kQkBoxes = kQkDim / kBoxColumns;
  static constexpr int kVBoxes = kVDim / kBoxColumns;
  static constexpr int kQBoxBytes = kQueryRows * kBoxRowBytes;  // 16 KiB
  static constexpr int kKvBoxBytes = kKeyRows * kBoxRowBytes;   // 16 KiB
  static constexpr int kQBytes = kQkBoxes * kQBoxBytes;
  static constexpr int kKStageBytes = kQkBoxes * kKvBoxBytes;
  static constexpr int kVStageBytes = kVBoxes * kKvBoxBytes;
  // Offsets from the 1024-byte-aligned base.
  static constexpr int kQOffset = 0;
  static constexpr int kKOffset = kQOffset + kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kKStageBytes;
  static constexpr int kBarrierOffset = kVOffset + kStages * kVStageBytes;
  // q_full, then k_full[kStages], k_empty[kStages], v_full[kStages], v_empty[kStages].
  static constexpr int kBarrierBytes = 8 * (1 + 4 * kStages);
  static constexpr int kSharedBytes = kAtomBytes /* alignment slack */ + kBarrierOffset + kBarrierBytes;

  static_assert(kQkDim % kBoxColumns == 0 && kVDim % kBoxColumns == 0, "head dims come in 64-column boxes");
  static_assert(kVDim == 128, "O += P V is one m64n128 wgmma per 16 keys");
  static_assert(kKeyRows == 128, "S = Q K^T is one m64n128 wgmma per 16 of Dqk");
  static_assert(kVBoxes <= kQkBoxes, "the output is staged in the Q tile's boxes");
  static_assert(kSharedBytes <= 227 * 1024, "sm_90's per-block shared-memory limit");
  static_assert(128 * kProducerRegisters + 128 * kMathWarpgroups * kMathRegisters <= 65536, "register file");
  static_assert(kMathRegisters % 8 == 0 && kProducerRegisters % 8 == 0, "setmaxnreg takes multiples of 8");
};

struct Sm90ForwardParams {
  float* lse;  // [B, Hq, S]
  int seq;
  int q_heads;
  int heads_per_kv;  // q_heads / kv_heads
  float scale;       // for lse
  float scale_log2;  // scale * log2(e), folded into the exponent
};

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ std::uint32_t pack_bf16x2(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return (std::uint32_t(__bfloat16_as_ushort(pair.y)) << 16) | __bfloat16_as_ushort(pair.x);
}

// ---- the producer: one thread ----

template <int kQkDim, int kVDim>
__device__ __forceinline__ void produce(const CUtensorMap* map_q, const CUtensorMap* map_k, const CUtensorMap* map_v,
                        std::uint32_t base, int head, int kv_head, int batch, int query0, int key_tiles) {
  using Config = Sm90ForwardConfig<kQkDim, kVDim>;
  constexpr int kStages = Config::kStages;
  const std::uint32_t barriers = base + Config::kBarrierOffset;
  const std::uint32_t q_full = barriers, k_full = barriers + 8, k_empty = k_full + 8 * kStages,
                      v_full = k_empty + 8 * kStages, v_empty = v_full + 8 * kStages;
  sm90::prefetch_tensor_map(map_q);
  sm90::prefetch_tensor_map(map_k);
  sm90::prefetch_tensor_map(map_v);

  sm90::mbarrier_arrive_expect_tx(q_full, Config::kQBytes);
#pragma unroll
  for (int box = 0; box < Config::kQkBoxes; ++box)
    sm90::tma_load_4d(base + Config::kQOffset + box * Config::kQBoxBytes, map_q, q_full, kBoxColumns * box, head,
                      query0, batch);

  // Iteration j reads key tile key_tiles - 1 - j (diagonal first), from slot j % kStages.
  for (int j = 0; j < key_tiles; ++j) {
    const int stage = j % kStages;
    const std::uint32_t lap = (j / kStages) & 1;
    const int key0 = (key_tiles - 1 - j) * Config::kKeyRows;
    // A fresh empty barrier reports parity 1 complete: the first lap passes.
    sm90::mbarrier_wait(k_empty + 8 * stage, lap ^ 1);
    sm90::mbarrier_arrive_expect_tx(k_full + 8 * stage, Config::kKStageBytes);  // boxes count whole, zeros too
    const std::uint32_t k_slot = base + Config::kKOffset + stage * Config::kKStageBytes;
#pragma unroll
    for (int box = 0; box < Config::kQkBoxes; ++box)
      sm90::tma_load_4d(k_slot + box * Config::kKvBoxBytes, map_k, k_full + 8 * stage, kBoxColumns * box, kv_head,
                        key0, batch);
    sm90::mbarrier_wait(v_empty + 8 * stage, lap ^ 1);
    sm90::mbarrier_arrive_expect_tx(v_full + 8 * stage, Config::kVStageBytes);
    const std::uint32_t v_slot = base + Config::kVOffset + stage * Config::kVStageBytes;
#pragma unroll
    for (int box = 0; box < Config::kVBoxes; ++box)
      sm90::tma_load_4d(v_slot + box * Config::kKvBoxBytes, map_v, v_full + 8 * stage, kBoxColumns * box, kv_head,
                        key0, batch);
  }
}

// ---- the math warpgroups ----

// Online-softmax step on this thread's scores s (rows r = 0, 1: register i
// belongs to row (i / 2) % 2): folds the tile's row maxima into row_max
// (raw scores), turns s into 2^(s * scale_log2 - max * scale_log2) in place,
// rescales row_sum by the correction and adds the new terms; returns the
// corrections (by which O must be multiplied) in correction[].
__device__ __forceinline__ void online_softmax(float (&s)[64], float (&row_max)[2], float (&row_sum)[2],
                                               float (&correction)[2], float scale_log2) {
  float tile_max[2] = {row_max[0], row_max[1]};
#pragma unroll
  for (int i = 0; i < 64; ++i) tile_max[(i / 2) % 2] = fmaxf(tile_max[(i / 2) % 2], s[i]);
  float max_scaled[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
    tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
    // A row with no visible key keeps max -inf; 0 avoids (-inf) - (-inf). Not
    // reached for valid rows (the diagonal tile comes first), kept for safety.
    max_scaled[r] = tile_max[r] == -INFINITY ? 0.f : tile_max[r] * scale_log2;
    correction[r] = fast_exp2(row_max[r] * scale_log2 - max_scaled[r]);  // 0 on the first tile
    row_max[r] = tile_max[r];
  }
  float sum[2][2] = {{0.f, 0.f}, {0.f, 0.f}};  // two chains per row
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    s[i] = fast_exp2(fmaf(s[i], scale_log2, -max_scaled[(i / 2) % 2]));
    sum[(i / 2) % 2][i % 2] += s[i];
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) row_sum[r] = row_sum[r] * correction[r] + (sum[r][0] + sum[r][1]);
}

template <int kQkDim, int kVDim>
__device__ __forceinline__ void consume(const CUtensorMap* map_out, const Sm90ForwardParams& p, std::uint32_t base, int head,
                        int batch, int query0, int key_tiles) {
  using Config = Sm90ForwardConfig<kQkDim, kVDim>;
  constexpr int kStages = Config::kStages;
  const std::uint32_t barriers = base + Config::kBarrierOffset;
  const std::uint32_t q_full = barriers, k_full = barriers + 8, k_empty = k_full + 8 * kStages,
                      v_full = k_empty + 8 * kStages, v_empty = v_full + 8 * kStages;
  // The warpgroup index through a shuffle, so that the compiler knows it is
  // warp-uniform and keeps the wgmma descriptors in uniform registers.
  const int warpgroup = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / 128), 0);
  const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int row_in_warpgroup = 16 * warp + lane / 4;  // this thread's rows: it and it + 8
  const int query = query0 + 64 * warpgroup + row_in_warpgroup;
  // This warpgroup's 64 rows of Q start 64 * 128 bytes into every Q box.
  const std::uint32_t q_rows = base + Config::kQOffset + 64 * warpgroup * kBoxRowBytes;

  // Descriptors: one base per operand, stepped by adding (byte offset >> 4)
  // to the start-address field (no carry out of it: shared addresses < 256 KiB).
  const std::uint64_t q_descriptor = sm90::make_smem_descriptor_128b(q_rows, 16, kAtomBytes);
  const std::uint64_t k_descriptor = sm90::make_smem_descriptor_128b(base + Config::kKOffset, 16, kAtomBytes);
  const std::uint64_t v_descriptor =
      sm90::make_smem_descriptor_128b(base + Config::kVOffset, Config::kKvBoxBytes, kAtomBytes);
  auto issue_scores = [&](float(&s)[64], int stage) {
    const std::uint64_t k_slot = k_descriptor + ((stage * Config::kKStageBytes) >> 4);
#pragma unroll
    for (int step = 0; step < kQkDim / 16; ++step) {
      // 16 columns of Dqk = 32 bytes inside a 128-byte swizzled row; a box per 64.
      const int q_column = (step / 4) * Config::kQBoxBytes + (step % 4) * 32;
      const int k_column = (step / 4) * Config::kKvBoxBytes + (step % 4) * 32;
      sm90::wgmma_m64n128k16_bf16<0, 0>(s, q_descriptor + (q_column >> 4), k_slot + (k_column >> 4),
                                        step > 0);  // step 0 overwrites
    }
  };
  auto issue_output = [&](float(&o)[64], std::uint32_t(&probabilities)[8][4], int stage) {
    const std::uint64_t v_slot = v_descriptor + ((stage * Config::kVStageBytes) >> 4);
#pragma unroll
    for (int step = 0; step < Config::kKeyRows / 16; ++step) {
      // N-major V: 16 key rows per step (2048 bytes), the two 64-column boxes LBO apart.
      sm90::wgmma_m64n128k16_bf16_register_a<1>(o, probabilities[step], v_slot + ((step * 16 * kBoxRowBytes) >> 4),
                                                1);
    }
  };
  auto pack_probabilities = [&](std::uint32_t(&probabilities)[8][4], const float(&s)[64]) {
#pragma unroll
    for (int step = 0; step < 8; ++step)
#pragma unroll
      for (int r = 0; r < 4; ++r) probabilities[step][r] = pack_bf16x2(s[8 * step + 2 * r], s[8 * step + 2 * r + 1]);
  };
  auto fence_probabilities = [&](std::uint32_t(&probabilities)[8][4]) {
#pragma unroll
    for (int step = 0; step < 8; ++step) sm90::fence_registers(probabilities[step]);
  };

  float o[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] = 0.f;
  float s[64];
  std::uint32_t probabilities[8][4];
  float row_max[2] = {-INFINITY, -INFINITY};  // raw scores
  float row_sum[2] = {0.f, 0.f};              // this thread's columns only, until the end
  float correction[2];

  sm90::mbarrier_wait_or_exit(q_full, 0);

  // Iteration 0: the diagonal key tile (slot 0, lap 0), masked.
  sm90::mbarrier_wait_or_exit(k_full, 0);
  sm90::wgmma_fence();
  issue_scores(s, 0);
  sm90::wgmma_commit_group();
  sm90::wgmma_wait_group<0>();
  sm90::fence_registers(s);
  if (lane == 0) sm90::mbarrier_arrive(k_empty);  // one arrival per math warp
  {
    const int key0 = (key_tiles - 1) * Config::kKeyRows;
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      const int key = key0 + 8 * (i / 4) + 2 * (lane % 4) + i % 2;
      if (key > query + 8 * ((i / 2) % 2)) s[i] = -INFINITY;  // also hides keys >= seq from valid rows
    }
  }
  online_softmax(s, row_max, row_sum, correction, p.scale_log2);
  pack_probabilities(probabilities, s);
  fence_probabilities(probabilities);

  // Iterations 1..key_tiles-1: key tiles below the diagonal, unmasked.
  for (int j = 1; j < key_tiles; ++j) {
    const int stage = j % kStages, previous = (j - 1) % kStages;
    // Both waits before the fence: a spin loop between the two products' issue
    // makes ptxas re-arm the register-A wgmma and serialise (C7518/C7519).
    // V_{j-1} landed with K_{j-1}, a tile ago, so this wait is normally free.
    sm90::mbarrier_wait_or_exit(k_full + 8 * stage, (j / kStages) & 1);
    sm90::mbarrier_wait_or_exit(v_full + 8 * previous, ((j - 1) / kStages) & 1);
    sm90::wgmma_fence();  // o rescaled, probabilities packed, s read: all before the async products
    issue_scores(s, stage);
    sm90::wgmma_commit_group();
    issue_output(o, probabilities, previous);
    sm90::wgmma_commit_group();

    sm90::wgmma_wait_group<1>();  // S_j done; P_{j-1} V_{j-1} may still run
    sm90::fence_registers(s);
    if (lane == 0) sm90::mbarrier_arrive(k_empty + 8 * stage);
    online_softmax(s, row_max, row_sum, correction, p.scale_log2);

    sm90::wgmma_wait_group<0>();
    sm90::fence_registers(o);
    fence_probabilities(probabilities);
    if (lane == 0) sm90::mbarrier_arrive(v_empty + 8 * previous);
#pragma unroll
    for (int i = 0; i < 64; ++i) o[i] *= correction[(i / 2) % 2];
    pack_probabilities(probabilities, s);
    // Materialise both here, before the next wgmma_fence: otherwise the
    // compiler sinks the packing below the next S product's issue, keeping
    // the old scores alive beside the new ones (and ptxas serialises).
    sm90::fence_registers(o);
    fence_probabilities(probabilities);
  }

  // The last P V.
  {
    const int last = key_tiles - 1, stage = last % kStages;
    sm90::mbarrier_wait_or_exit(v_full + 8 * stage, (last / kStages) & 1);
    sm90::wgmma_fence();
    issue_output(o, probabilities, stage);
    sm90::wgmma_commit_group();
    sm90::wgmma_wait_group<0>();
    sm90::fence_registers(o);
    fence_probabilities(probabilities);
    // No arrival on v_empty: the producer has issued its last load.
  }

  // Every row saw at least one key, so its sum is positive.
  float inverse_sum[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
    inverse_sum[r] = 1.f / row_sum[r];
  }

  // Stage O in this warpgroup's rows of the Q boxes (all its S products are
  // done; the other warpgroup never reads these rows), 128-byte swizzle:
  // 16-byte chunk c of row r at chunk c ^ (r % 8). Register i holds column
  // 8 * (i / 4) + 2 * (lane % 4) + i % 2: column group i / 4 is box (i / 32),
  // chunk (i / 4) % 8. A warp's 8 rows then cover all 32 banks per store.
#pragma unroll
  for (int i = 0; i < 64; i += 2) {
    const int row = row_in_warpgroup + 8 * ((i / 2) % 2);
    const int r = (i / 2) % 2;
    const std::uint32_t address = q_rows + (i / 32) * Config::kQBoxBytes + row * kBoxRowBytes +
                                  ((((i / 4) % 8) ^ (row % 8)) * 16) + 4 * (lane % 4);
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address),
                 "r"(pack_bf16x2(o[i] * inverse_sum[r], o[i + 1] * inverse_sum[r]))
                 : "memory");
  }
  sm90::fence_proxy_async_shared();                // our stores, before the TMA unit reads them
  sm90::named_barrier_sync(1 + warpgroup, 128);    // the warpgroup's stores, before the store is issued
  if (threadIdx.x % 128 == 0) {
    const int row0 = query0 + 64 * warpgroup;
    if (row0 < p.seq) {
#pragma unroll
      for (int box = 0; box < Config::kVBoxes; ++box)
        sm90::tma_store_4d(map_out, q_rows + box * Config::kQBoxBytes, kBoxColumns * box, head, row0, batch);
      sm90::bulk_commit_group();
      sm90::bulk_wait_group_read<0>();  // shared memory must outlive the read
    }
  }
  if (lane % 4 == 0) {
    float* lse = p.lse + (static_cast<std::int64_t>(batch) * p.q_heads + head) * p.seq;
#pragma unroll
    for (int r = 0; r < 2; ++r)
      if (query + 8 * r < p.seq) lse[query + 8 * r] = row_max[r] * p.scale + logf(row_sum[r]);
  }
}

template <int kQkDim, int kVDim>
__global__ void __launch_bounds__(Sm90ForwardConfig<kQkDim, kVDim>::kThreads, 1)
    flash_attention_forward_sm90_kernel(const __grid_constant__ CUtensorMap map_q,
                                        const __grid_constant__ CUtensorMap map_k,
                                        const __grid_constant__ CUtensorMap map_v,
                                        const __grid_constant__ CUtensorMap map_out, const Sm90ForwardParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Config = Sm90ForwardConfig<kQkDim, kVDim>;
  extern __shared__ unsigned char raw_shared[];
  const std::uint32_t raw = sm90::shared_address(raw_shared);
  const std::uint32_t base = (raw + kAtomBytes - 1) & ~static_cast<std::uint32_t>(kAtomBytes - 1);

  const int head = blockIdx.x;
  const int query_tile = gridDim.y - 1 - blockIdx.y;  // longest rows first
  const int batch = blockIdx.z;
  const int query0 = query_tile * Config::kQueryRows;
  const int key_tiles = query_tile + 1;  // 128-key tiles up to and including the diagonal

  if (threadIdx.x == 0) {
    const std::uint32_t barriers = base + Config::kBarrierOffset;
    sm90::mbarrier_init(barriers, 1);  // q_full: the producer's arrive.expect_tx
    for (int s = 0; s < Config::kStages; ++s) {
      sm90::mbarrier_init(barriers + 8 * (1 + s), 1);                                        // k_full
      sm90::mbarrier_init(barriers + 8 * (1 + Config::kStages + s), 4 * Config::kMathWarpgroups);      // k_empty
      sm90::mbarrier_init(barriers + 8 * (1 + 2 * Config::kStages + s), 1);                  // v_full
      sm90::mbarrier_init(barriers + 8 * (1 + 3 * Config::kStages + s), 4 * Config::kMathWarpgroups);  // v_empty
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();

  if (threadIdx.x / 128 == Config::kMathWarpgroups) {
    sm90::warpgroup_release_registers<Config::kProducerRegisters>();
    if (threadIdx.x == Config::kMathWarpgroups * 128) {
      produce<kQkDim, kVDim>(&map_q, &map_k, &map_v, base, head, head / p.heads_per_kv, batch, query0, key_tiles);
    }
  } else {
    sm90::warpgroup_claim_registers<Config::kMathRegisters>();
    if (threadIdx.x % 128 == 0) sm90::prefetch_tensor_map(&map_out);  // the threads that issue the stores
    consume<kQkDim, kVDim>(&map_out, p, base, head, batch, query0, key_tiles);
  }
#else
  __trap();  // built for sm_90a only
#endif
}

// ---- host side ----

// One head-strided [B, S, H, D] bf16 tensor as a 4-D map (D innermost, then
// H, S, B), box 64 (D) x 1 (head) x `box_rows` (S) x 1, 128-byte swizzle:
// a box is `box_rows` rows of 128 bytes. Rows past S read as zeros and are
// skipped by stores; the batch is its own dimension, so nothing crosses into
// the next sequence.
CUtensorMap head_map(const void* base, const AttentionShape& shape, std::int64_t heads, std::int64_t dim,
                     int box_rows) {
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(dim), static_cast<cuuint64_t>(heads),
                              static_cast<cuuint64_t>(shape.seq), static_cast<cuuint64_t>(shape.batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(dim * 2), static_cast<cuuint64_t>(heads * dim * 2),
                                 static_cast<cuuint64_t>(shape.seq * heads * dim * 2)};
  const cuuint32_t box[4] = {kBoxColumns, 1, static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  CUtensorMap map;
  const CUresult result = tensor_map_encoder()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(base), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS)
    throw Error("cuda::causal_attention_forward_sm90: cuTensorMapEncodeTiled failed, code " + std::to_string(result));
  return map;
}

template <int kQkDim, int kVDim>
void launch_sm90_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                         const AttentionShape& shape, float scale, cudaStream_t stream) {
  using Config = Sm90ForwardConfig<kQkDim, kVDim>;
  const auto kernel = flash_attention_forward_sm90_kernel<kQkDim, kVDim>;
  allow_dynamic_shared_memory(kernel, Config::kSharedBytes);
  const CUtensorMap map_q = head_map(q, shape, shape.q_heads, kQkDim, Config::kQueryRows);
  const CUtensorMap map_k = head_map(k, shape, shape.kv_heads, kQkDim, Config::kKeyRows);
  const CUtensorMap map_v = head_map(v, shape, shape.kv_heads, kVDim, Config::kKeyRows);
  const CUtensorMap map_out = head_map(out, shape, shape.q_heads, kVDim, 64);  // one math warpgroup's rows
  const Sm90ForwardParams params{lse,
                                 static_cast<int>(shape.seq),
                                 static_cast<int>(shape.q_heads),
                                 static_cast<int>(shape.q_heads / shape.kv_heads),
                                 scale,
                                 scale * flash::kLog2e};
  const dim3 grid(static_cast<unsigned>(shape.q_heads),
                  static_cast<unsigned>(flash::ceil_div(shape.seq, Config::kQueryRows)),
                  static_cast<unsigned>(shape.batch));
  kernel<<<grid, Config::kThreads, Config::kSharedBytes, stream>>>(map_q, map_k, map_v, map_out, params);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void causal_attention_forward_sm90(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                   const AttentionShape& shape, std::optional<double> softmax_scale,
                                   cudaStream_t stream) {
  constexpr const char* kOp = "cuda::causal_attention_forward_sm90";
  const float scale = flash::resolve_softmax_scale(kOp, shape, softmax_scale);
  if (!flash::check_flash_attention_shape(kOp, shape)) return;
  const bool is_128_128 = flash::hopper_head_dims_are_128(kOp, shape, "cuda::causal_attention_forward");
  flash::check_aligned(kOp, "out", out);
  flash::check_aligned(kOp, "q", q);
  flash::check_aligned(kOp, "k", k);
  flash::check_aligned(kOp, "v", v);
  if (lse == nullptr) throw Error(std::string(kOp) + ": lse is null");
  require_hopper(kOp);
  if (is_128_128) {
    launch_sm90_forward<128, 128>(out, lse, q, k, v, shape, scale, stream);
  } else {
    launch_sm90_forward<192, 128>(out, lse, q, k, v, shape, scale, stream);
  }
}

}  // namespace moebench::ops::cuda
