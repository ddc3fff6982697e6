// Grouped GEMMs of the routed experts, version 2: Hopper (sm_90a) kernels.
// Same three products and contracts as version 1 (grouped_gemm.cu, contracts
// in ops/grouped_gemm.h), entries suffixed _sm90:
//
//   m_grouped_bf16_gemm_nt_contiguous_sm90  out[M, N]   = a[M, K] @ w[g][N, K]^T   (forward)
//   m_grouped_bf16_gemm_nn_contiguous_sm90  da[M, K]    = dout[M, N] @ w[g][N, K]  (data gradient)
//   k_grouped_bf16_gemm_tn_contiguous_sm90  dw[g][N, K] += dout_g^T @ a_g          (weight gradient, fp32)
//
// Version 2 (this file): one kernel template for the three (v1 stays in
// grouped_gemm.cu, the cuBLASLt loop beside it; callers choose by entry).
//   - 128x256 output tile per CTA, K step 64; 384 threads = 3 warpgroups:
//     warpgroups 0 and 1 compute (rows 0-63 and 64-127 of the tile, one
//     wgmma.mma_async m64n256k16 bf16 -> fp32 per 16 of K, 128 accumulator
//     registers per thread), warpgroup 2 loads (one thread issues TMA).
//     setmaxnreg gives the loaders 40 registers and the math 232.
//   - TMA (cp.async.bulk.tensor) into a ring of 48 KiB stages (A 16 KiB +
//     B 32 KiB; 4 stages, 3 for the weight gradient), 128-byte swizzle; per stage a "full" mbarrier (the
//     producer's arrival + the TMA's transaction bytes) and an "empty" one
//     (one arrival per consumer warp once its wgmmas on the stage are done;
//     each warpgroup keeps one k-block of wgmmas in flight, wait_group 1).
//   - Operand layouts: forward, both operands K-major (rows of 64 K values);
//     data gradient, w[g] is read N-major ([reduction rows][64 output
//     columns] boxes, wgmma's transposed-B layout); weight gradient, both
//     operands MN-major (boxes of 64 rows of the group x 64 columns of dout
//     or a, transposed A and B).
//   - Persistent tile scheduler reading the device counts (as in v1): each
//     CTA prefix-sums the counts in shared memory and walks the flattened
//     (group, m-tile, n-tile) space with stride gridDim.x, m-tiles fastest.
//     M-grouped: a group's last m-tile reads rows of the next group (harmless:
//     output row r depends only on input row r) and is stored with a row
//     predicate, so the next group's rows are never written; rows past
//     m_capacity arrive as TMA zeros. The weights are a 3-D [G, N, K] tensor
//     map, so reduction or column overhang past N or K reads zeros, never the
//     next expert. K-grouped: every non-empty group owns ceil(N/128) x
//     ceil(K/256) tiles reducing over its rows in steps of 64; the last,
//     partial step would read the next group's rows, so the math warpgroups
//     zero those rows of both operands in shared memory before the wgmma
//     (generic stores, then fence.proxy.async, then a named barrier).
//   - M-grouped epilogue straight from the accumulators: predicated bf16x2
//     stores, while the producer already loads the next tile's stages.
//   - K-grouped epilogue (version 2.1): dw += tile is one TMA reduce-add per
//     64 x 32 fp32 box (cp.reduce.async.bulk.tensor .add, the L2 does the
//     read-add-write), so the fp32 traffic (8 bytes per dw element, the
//     bound of these memory-heavy shapes: 7.5 GB for Mixtral fc1) runs in the
//     background of the next tiles' math instead of between them. Each math
//     warpgroup stages its 64 x 256 accumulators a quarter (64 x 64, 16 KiB)
//     at a time through two alternating buffers (128-byte swizzled, no bank
//     conflicts); the wait before refilling a buffer is for the reduce issued
//     two quarters earlier. The 64 KiB of staging cost the pipeline its
//     fourth stage. dw is a 3-D [G, N, K] map: rows past N and columns past K
//     are skipped, never the next expert's.
//   - The tensor maps are encoded on the host per call with
//     cuTensorMapEncodeTiled, reached through cudaGetDriverEntryPointByVersion
//     (the non-deprecated form of cudaGetDriverEntryPoint): no -lcuda.
//
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1
//        -c grouped_gemm_sm90.cu --resource-usage   (sm_90a only: wgmma, setmaxnreg)
// Check and time: tests/gpu/grouped_gemm_test.cpp (GroupedGemmTest.*/Sm90, GroupedGemmTiming.ProxyShapes).
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/cuda/grouped_gemm_schedule.cuh"
#include "moebench/ops/cuda/sm90_host.cuh"
#include "moebench/ops/cuda/sm90_primitives.cuh"
#include "moebench/ops/grouped_gemm.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kBlockM = 128;  // output rows per CTA tile: two math warpgroups of 64
constexpr int kBlockN = 256;  // output columns per CTA tile: one m64n256 wgmma per warpgroup
constexpr int kBlockK = 64;   // reduction per stage: 64 bf16 = one 128-byte swizzled row
constexpr int kMathWarpgroups = 2;
constexpr int kThreads = 128 * (kMathWarpgroups + 1);
constexpr int kProducerRegisters = 40;
constexpr int kMathRegisters = 232;  // 128*40 + 256*232 = 64512 <= 65536
constexpr int kATileBytes = kBlockM * kBlockK * 2;    // 16 KiB
constexpr int kBTileBytes = kBlockN * kBlockK * 2;    // 32 KiB
constexpr int kStageBytes = kATileBytes + kBTileBytes;
constexpr int kBoxBytes = 64 * 64 * 2;                // an MN-major box: 64 rows of K x 64 of M/N, 8 KiB
constexpr int kAtomBytes = 1024;                      // 8 swizzled rows of 128 bytes
constexpr int kScheduleBytesPerGroup = sizeof(long long) + sizeof(int);
constexpr int kAlignmentSlack = 1024;  // dynamic shared memory is rounded up to a 1024-byte boundary
constexpr int kMaxDynamicSharedBytes = 227 * 1024;  // sm_90's per-block opt-in limit
// Weight-gradient staging: per math warpgroup two buffers, each 64 rows x 64
// columns of fp32 (16 KiB) = two boxes of 64 rows x 32 columns, as the
// 128-byte swizzle limits a box's inner extent to 128 bytes.
constexpr int kStagingBoxColumns = 32;
constexpr int kStagingBoxBytes = 64 * kStagingBoxColumns * 4;  // 8 KiB
constexpr int kStagingBufferColumns = 64;
constexpr int kStagingBufferBytes = 2 * kStagingBoxBytes;      // 16 KiB
constexpr int kStagingBuffersPerWarpgroup = 2;
static_assert(kBlockM == kMathWarpgroups * 64, "each math warpgroup owns 64 rows");
static_assert(kATileBytes % kAtomBytes == 0 && kBTileBytes % kAtomBytes == 0, "tiles start on swizzle atoms");
static_assert(kMathRegisters % 8 == 0 && kProducerRegisters % 8 == 0, "setmaxnreg takes multiples of 8");
static_assert(128 * kProducerRegisters + 128 * kMathWarpgroups * kMathRegisters <= 65536, "register file");

enum class Sm90Kind { kMGroupedNT, kMGroupedNN, kKGroupedTN };

// Shared memory of one kind (dynamic, from a 1024-byte boundary): A tiles
// [kStages][16 KiB], B tiles [kStages][32 KiB], the weight gradient's fp32
// staging [2 warpgroups][2 buffers][16 KiB], full[kStages] and
// empty[kStages] mbarriers, then tile_start[G+1] (long long) and
// row_start[G+1] (int). The weight gradient gives up one stage (3 x 48 KiB)
// for 64 KiB of staging so that its fp32 reduce-adds run in the background.
template <Sm90Kind kKind>
struct SharedLayout {
  static constexpr int kStages = kKind == Sm90Kind::kKGroupedTN ? 3 : 4;
  static constexpr int kPipelineBytes = kStages * kStageBytes;
  static constexpr int kStagingBytes =
      kKind == Sm90Kind::kKGroupedTN ? kMathWarpgroups * kStagingBuffersPerWarpgroup * kStagingBufferBytes : 0;
  static constexpr int kBarrierBytes = 2 * kStages * 8;
  static constexpr int kScheduleOffset = kPipelineBytes + kStagingBytes + kBarrierBytes;
  static constexpr int kMaxBytes = kAlignmentSlack + kScheduleOffset + (kMaxGroupedGemmGroups + 1) * kScheduleBytesPerGroup;
  static_assert(kMaxBytes <= kMaxDynamicSharedBytes, "shared memory of the largest schedule");
};

struct Sm90Params {
  void* out;  // bf16 [M, cols] (M-grouped); K-grouped: fp32 [G, N, K], reached through the dw tensor map
  const std::int32_t* group_counts;
  int num_groups;
  int m_capacity;
  int n;
  int k;
};

__host__ __device__ constexpr int ceil_div(long long a, int b) { return static_cast<int>((a + b - 1) / b); }

// Output columns: N (forward), K (data gradient: da is [M, K]; weight
// gradient: dw[g] is [N, K]).
template <Sm90Kind kKind>
__host__ __device__ constexpr int output_columns(int n, int k) {
  return kKind == Sm90Kind::kMGroupedNT ? n : k;
}

// One output tile of the flattened schedule. m0/n0 are tile offsets in the
// output (for K-grouped: rows of dw[g] along N, columns along K).
struct Tile {
  int group, group_begin, group_rows, m0, n0, k_blocks;
};

// `group` carries over between calls: tiles only increase.
template <Sm90Kind kKind>
__device__ __forceinline__ Tile locate_tile(long long tile, int& group, const long long* tile_start,
                                            const int* row_start, const Sm90Params& p) {
  while (tile >= tile_start[group + 1]) ++group;
  Tile t;
  t.group = group;
  t.group_begin = row_start[group];
  t.group_rows = row_start[group + 1] - row_start[group];
  const int tiles_m = kKind == Sm90Kind::kKGroupedTN ? ceil_div(p.n, kBlockM) : ceil_div(t.group_rows, kBlockM);
  const int local = static_cast<int>(tile - tile_start[group]);
  t.m0 = (local % tiles_m) * kBlockM;
  t.n0 = (local / tiles_m) * kBlockN;
  const int reduction = kKind == Sm90Kind::kMGroupedNT ? p.k : kKind == Sm90Kind::kMGroupedNN ? p.n : t.group_rows;
  t.k_blocks = ceil_div(reduction, kBlockK);
  return t;
}

// The producer: one thread walks the same schedule as the math warpgroups
// and fills stage (iteration % stages) of the ring for every k-block.
template <Sm90Kind kKind>
__device__ void produce(const CUtensorMap* map_a, const CUtensorMap* map_b, const Sm90Params& p,
                        const long long* tile_start, const int* row_start, std::uint32_t a_tiles,
                        std::uint32_t b_tiles, std::uint32_t full, std::uint32_t empty) {
  sm90::prefetch_tensor_map(map_a);
  sm90::prefetch_tensor_map(map_b);
  const long long total_tiles = tile_start[p.num_groups];
  constexpr int kStages = SharedLayout<kKind>::kStages;
  int group = 0;
  std::uint32_t iteration = 0;  // k-blocks issued so far, over all tiles of this CTA
  for (long long tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
    const Tile t = locate_tile<kKind>(tile, group, tile_start, row_start, p);
    for (int kb = 0; kb < t.k_blocks; ++kb, ++iteration) {
      const std::uint32_t stage = iteration % kStages;
      const std::uint32_t lap = (iteration / kStages) & 1;
      // Slot free? The consumers complete phase `lap` of empty[stage] when
      // they finish lap `lap` on it; on lap 0 we wait for parity 1, which a
      // fresh barrier reports as complete.
      sm90::mbarrier_wait(empty + stage * 8, lap ^ 1);
      const std::uint32_t full_barrier = full + stage * 8;
      sm90::mbarrier_arrive_expect_tx(full_barrier, kStageBytes);  // every box counts whole, zeros included
      const std::uint32_t a = a_tiles + stage * kATileBytes, b = b_tiles + stage * kBTileBytes;
      const int k0 = kb * kBlockK;
      if constexpr (kKind == Sm90Kind::kMGroupedNT) {
        // a [M, K]: box 64 (K) x 128 (rows); w [G, N, K]: box 64 (K) x 256 (N) x 1.
        sm90::tma_load_2d(a, map_a, full_barrier, k0, t.group_begin + t.m0);
        sm90::tma_load_3d(b, map_b, full_barrier, k0, t.n0, t.group);
      } else if constexpr (kKind == Sm90Kind::kMGroupedNN) {
        // dout [M, N]: box 64 (N) x 128 (rows); w [G, N, K]: four boxes of 64 (K, the
        // output columns) x 64 (N, the reduction) x 1, N-major.
        sm90::tma_load_2d(a, map_a, full_barrier, k0, t.group_begin + t.m0);
#pragma unroll
        for (int j = 0; j < kBlockN / 64; ++j)
          sm90::tma_load_3d(b + j * kBoxBytes, map_b, full_barrier, t.n0 + 64 * j, k0, t.group);
      } else {
        // dout [M, N]: two boxes of 64 (N, output rows) x 64 (group rows), M-major;
        // a [M, K]: four boxes of 64 (K, output columns) x 64 (group rows), N-major.
        const int row = t.group_begin + k0;
#pragma unroll
        for (int j = 0; j < kBlockM / 64; ++j)
          sm90::tma_load_2d(a + j * kBoxBytes, map_a, full_barrier, t.m0 + 64 * j, row);
#pragma unroll
        for (int j = 0; j < kBlockN / 64; ++j)
          sm90::tma_load_2d(b + j * kBoxBytes, map_b, full_barrier, t.n0 + 64 * j, row);
      }
    }
  }
}

// K-grouped only: zero the 128-byte rows [valid_rows, 64) of every box of
// the stage (2 A boxes, 4 B boxes; a box row is one reduction row), i.e. the
// rows of the next group that the last, partial k-block loaded. Swizzling
// permutes chunks within a row, so whole rows stay whole rows. Run by the
// 256 math threads, then fenced for the async proxy and synchronised.
__device__ __forceinline__ void zero_rows_past_group(std::uint32_t a, std::uint32_t b, int valid_rows,
                                                     int math_thread) {
  constexpr int kBoxes = (kBlockM + kBlockN) / 64;
  const int chunks_per_box = (64 - valid_rows) * 8;  // 16-byte chunks
  for (int chunk = math_thread; chunk < kBoxes * chunks_per_box; chunk += 128 * kMathWarpgroups) {
    const int box = chunk / chunks_per_box, within = chunk % chunks_per_box;
    const std::uint32_t base = box < kBlockM / 64 ? a + box * kBoxBytes : b + (box - kBlockM / 64) * kBoxBytes;
    const std::uint32_t address = base + valid_rows * 128 + within * 16;
    asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(address), "r"(0) : "memory");
  }
  sm90::fence_proxy_async_shared();              // our generic stores, before wgmma's async-proxy reads
  sm90::named_barrier_sync(1, 128 * kMathWarpgroups);  // everyone's zeros, before anyone's wgmma
}

// K-grouped epilogue of one math warpgroup: its 64 x 256 fp32 accumulators
// are added into dw[g] (rows m0.., columns n0.. of the [N, K] gradient) by TMA
// reduce-adds, 64 columns (a quarter) at a time through the warpgroup's two
// 16 KiB staging buffers, alternating. Per quarter: the warpgroup's elected
// thread (which issued every reduce of this warpgroup) waits until the
// reduce that last used the buffer has read it (at most one newer group,
// the other buffer's, still reading), a named barrier lets all 128 threads
// overwrite it, each thread stores its registers (st.shared.v2, 128-byte
// swizzle as the map says: 16-byte chunk c of row r at chunk c ^ (r % 8), so
// a warp's 8 rows x 32 bytes cover every bank twice, no conflict beyond the
// two wavefronts) and fences them for the async proxy, a second barrier, and
// the elected thread issues the quarter's two box reduce-adds as one bulk
// group. The L2 adds the data into dw while the math goes on with the next
// tile. Boxes that start past N or K are not issued (their group is then
// empty, which keeps the group count per quarter at one); the rest of the
// overhang the TMA unit skips.
__device__ __forceinline__ void reduce_add_tile(const CUtensorMap* map_dw, const float (&acc)[128], const Tile& t,
                                                int n, int k, std::uint32_t staging, int warpgroup, int warp,
                                                int lane) {
  const bool elected = threadIdx.x % 128 == 0;
  const int barrier = 2 + warpgroup;  // 1 is the zeroing barrier of both math warpgroups
  // Register i: row 16*warp + lane/4 + 8*((i/2)%2), column 8*(i/4) +
  // 2*(lane%4) + (i%2) of the warpgroup's 64 x 256; row % 8 == lane / 4.
  const std::uint32_t row_offset = (warp * 16 + lane / 4) * 128 + (lane % 2) * 8;
  const int chunk_bit = (lane % 4) / 2;  // the 16-byte chunk's low bit within a 32-byte column group
#pragma unroll
  for (int quarter = 0; quarter < kBlockN / kStagingBufferColumns; ++quarter) {
    const std::uint32_t buffer = staging + (quarter % kStagingBuffersPerWarpgroup) * kStagingBufferBytes;
    if (elected) sm90::bulk_wait_group_read<kStagingBuffersPerWarpgroup - 1>();
    sm90::named_barrier_sync(barrier, 128);  // the buffer is free for everyone
#pragma unroll
    for (int jj = 0; jj < kStagingBufferColumns / 8; ++jj) {
      const int j = quarter * (kStagingBufferColumns / 8) + jj;  // accumulator column group: columns 8j..8j+7
      const int box = jj / (kStagingBoxColumns / 8);
      const int chunk = 2 * (jj % (kStagingBoxColumns / 8)) + chunk_bit;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const std::uint32_t address =
            buffer + box * kStagingBoxBytes + row_offset + half * 8 * 128 + (chunk ^ (lane / 4)) * 16;
        asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(acc[4 * j + 2 * half]),
                     "f"(acc[4 * j + 2 * half + 1])
                     : "memory");
      }
    }
    sm90::fence_proxy_async_shared();        // our stores, before the TMA unit reads them
    sm90::named_barrier_sync(barrier, 128);  // everyone's stores, before the reduce is issued
    if (elected) {
      const int row = t.m0 + 64 * warpgroup;
#pragma unroll
      for (int box = 0; box < kStagingBufferColumns / kStagingBoxColumns; ++box) {
        const int column = t.n0 + quarter * kStagingBufferColumns + box * kStagingBoxColumns;
        if (row < n && column < k)
          sm90::tma_reduce_add_3d(map_dw, buffer + box * kStagingBoxBytes, column, row, t.group);
      }
      sm90::bulk_commit_group();
    }
  }
}

// The math warpgroups: for each tile, accumulate 64x256 per warpgroup over
// the k-blocks, then store (M-grouped) or reduce-add (K-grouped, through
// `staging`, this warpgroup's part of the staging buffers).
template <Sm90Kind kKind>
__device__ void consume(const CUtensorMap* map_dw, const Sm90Params& p, const long long* tile_start,
                        const int* row_start, std::uint32_t a_tiles, std::uint32_t b_tiles, std::uint32_t staging,
                        std::uint32_t full, std::uint32_t empty) {
  constexpr bool kKGrouped = kKind == Sm90Kind::kKGroupedTN;
  constexpr int kTransposeA = kKGrouped ? 1 : 0;                           // dout^T is M-major
  constexpr int kTransposeB = kKind == Sm90Kind::kMGroupedNT ? 0 : 1;      // w (dgrad) and a (wgrad) N-major
  const int warpgroup = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const long long total_tiles = tile_start[p.num_groups];
  const int out_cols = output_columns<kKind>(p.n, p.k);
  constexpr int kStages = SharedLayout<kKind>::kStages;

  float acc[128];
  int group = 0;
  std::uint32_t iteration = 0;  // k-blocks consumed so far: the same sequence as the producer's
  for (long long tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
    const Tile t = locate_tile<kKind>(tile, group, tile_start, row_start, p);
#pragma unroll
    for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

    std::uint32_t previous_stage = 0;  // the stage of the k-block whose wgmmas may still run
    for (int kb = 0; kb < t.k_blocks; ++kb, ++iteration) {  // k_blocks >= 1: K >= 8, K-grouped rows >= 1
      const std::uint32_t stage = iteration % kStages;
      const std::uint32_t lap = (iteration / kStages) & 1;
      sm90::mbarrier_wait(full + stage * 8, lap);  // TMA bytes of this lap have landed (acquire)
      const std::uint32_t a = a_tiles + stage * kATileBytes, b = b_tiles + stage * kBTileBytes;
      if constexpr (kKGrouped) {
        const int valid_rows = t.group_rows - kb * kBlockK;
        if (valid_rows < kBlockK) zero_rows_past_group(a, b, valid_rows, threadIdx.x);  // uniform over the 256
      }
      // Orders earlier register writes to the accumulators (the zeroing) and
      // the generic-proxy zeroing of the stage before the wgmmas below.
      sm90::fence_registers(acc);
      sm90::wgmma_fence();
#pragma unroll
      for (int s = 0; s < kBlockK / 16; ++s) {
        std::uint64_t descriptor_a, descriptor_b;
        if constexpr (kTransposeA == 0) {
          // K-major A: this warpgroup's 64 rows start 64*128 bytes in; K step = 32 bytes.
          descriptor_a = sm90::make_smem_descriptor_128b(a + warpgroup * 64 * 128 + s * 32, 16, kAtomBytes);
        } else {
          // M-major A: this warpgroup's 64 rows are box `warpgroup`; K step = 16 box rows.
          descriptor_a = sm90::make_smem_descriptor_128b(a + warpgroup * kBoxBytes + s * 16 * 128, kBoxBytes,
                                                         kAtomBytes);
        }
        if constexpr (kTransposeB == 0) {
          // K-major B: 256 rows of 128 bytes, 8-row atoms 1024 bytes apart.
          descriptor_b = sm90::make_smem_descriptor_128b(b + s * 32, 16, kAtomBytes);
        } else {
          // N-major B: four boxes of 64 columns (LBO = 8 KiB apart), K step = 16 box rows.
          descriptor_b = sm90::make_smem_descriptor_128b(b + s * 16 * 128, kBoxBytes, kAtomBytes);
        }
        sm90::wgmma_m64n256k16_bf16<kTransposeA, kTransposeB>(acc, descriptor_a, descriptor_b);
      }
      sm90::wgmma_commit_group();  // the four wgmmas of this k-block form one group
      // Keep this k-block's group in flight and wait for the previous one:
      // its stage is no longer read and goes back to the producer.
      sm90::wgmma_wait_group<1>();
      sm90::fence_registers(acc);
      if (kb > 0 && lane == 0) sm90::mbarrier_arrive(empty + previous_stage * 8);  // one arrival per math warp
      previous_stage = stage;
    }
    sm90::wgmma_wait_group<0>();  // the tile's last group: accumulators final
    sm90::fence_registers(acc);   // no accumulator read may move above the wait
    if (lane == 0) sm90::mbarrier_arrive(empty + previous_stage * 8);

    if constexpr (kKGrouped) {
      reduce_add_tile(map_dw, acc, t, p.n, p.k, staging, warpgroup, warp, lane);
    } else {
      // Register i: row 16*warp + lane/4 + 8*((i/2)%2), column 8*(i/4) +
      // 2*(lane%4) + (i%2), within this warpgroup's 64 x 256.
      const int row_in_tile = warpgroup * 64 + warp * 16 + lane / 4;
      const int column_in_tile = 2 * (lane % 4);
      const int cols_valid = out_cols - t.n0;
      const int rows_valid = t.group_rows - t.m0;  // never past the group: the next group's rows follow
      __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out) +
                           (static_cast<long long>(t.group_begin) + t.m0) * out_cols + t.n0;
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
        const int column = column_in_tile + 8 * j;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = row_in_tile + 8 * half;
          if (row < rows_valid && column < cols_valid) {
            *reinterpret_cast<__nv_bfloat162*>(out + static_cast<long long>(row) * out_cols + column) =
                __floats2bfloat162_rn(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
          }
        }
      }
    }
  }
  if constexpr (kKGrouped) {
    // The staging buffers must outlive the reduces that read them.
    if (threadIdx.x % 128 == 0) sm90::bulk_wait_group<0>();
  }
}

// Shared memory as SharedLayout<kKind> says. map_dw: the fp32 [G, N, K]
// weight gradient (K-grouped only; unused by the M-grouped kinds).
template <Sm90Kind kKind>
__global__ void __launch_bounds__(kThreads, 1)
    grouped_gemm_sm90_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                             const __grid_constant__ CUtensorMap map_dw, const Sm90Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char raw_shared[];
  const std::uint32_t raw = sm90::shared_address(raw_shared);
  const std::uint32_t base = (raw + kAtomBytes - 1) & ~static_cast<std::uint32_t>(kAtomBytes - 1);
  unsigned char* shared = raw_shared + (base - raw);
  using Layout = SharedLayout<kKind>;
  constexpr int kStages = Layout::kStages;
  const std::uint32_t a_tiles = base;
  const std::uint32_t b_tiles = base + kStages * kATileBytes;
  const std::uint32_t staging = base + Layout::kPipelineBytes;
  const std::uint32_t full = staging + Layout::kStagingBytes;
  const std::uint32_t empty = full + kStages * 8;
  long long* tile_start = reinterpret_cast<long long*>(shared + Layout::kScheduleOffset);
  int* row_start = reinterpret_cast<int*>(tile_start + p.num_groups + 1);

  if (threadIdx.x < 32) {
    grouped_schedule::build_schedule<kKind == Sm90Kind::kKGroupedTN, kBlockM>(
        p.group_counts, p.num_groups, p.m_capacity, p.n, ceil_div(output_columns<kKind>(p.n, p.k), kBlockN),
        tile_start, row_start);
  } else if (threadIdx.x == 32) {
    for (int s = 0; s < kStages; ++s) {
      sm90::mbarrier_init(full + s * 8, 1);                     // the producer's arrive.expect_tx
      sm90::mbarrier_init(empty + s * 8, kMathWarpgroups * 4);  // one arrival per math warp
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();  // schedule and barriers ready for every role

  if (threadIdx.x / 128 == kMathWarpgroups) {
    sm90::warpgroup_release_registers<kProducerRegisters>();
    if (threadIdx.x == kMathWarpgroups * 128) {
      produce<kKind>(&map_a, &map_b, p, tile_start, row_start, a_tiles, b_tiles, full, empty);
    }
  } else {
    sm90::warpgroup_claim_registers<kMathRegisters>();
    if constexpr (kKind == Sm90Kind::kKGroupedTN) {
      if (threadIdx.x % 128 == 0) sm90::prefetch_tensor_map(&map_dw);  // the thread that issues the reduces
    }
    const std::uint32_t warpgroup_staging =
        staging + (threadIdx.x / 128) * kStagingBuffersPerWarpgroup * kStagingBufferBytes;
    consume<kKind>(&map_dw, p, tile_start, row_start, a_tiles, b_tiles, warpgroup_staging, full, empty);
  }
#else
  __trap();  // built for sm_90a only
#endif
}

// ---- host side ----

// A tensor map of `rank` dims (dims[0] innermost, strides in bytes of dims
// 1..rank-1), 128-byte swizzle, zeros outside the tensor (loads; stores and
// reduce-adds skip what lies outside).
CUtensorMap make_tensor_map(CUtensorMapDataType type, const void* base, int rank, const cuuint64_t* dims,
                            const cuuint64_t* strides, const cuuint32_t* box) {
  CUtensorMap map;
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult result = tensor_map_encoder()(
      &map, type, rank, const_cast<void*>(base), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) throw Error("grouped gemm sm90: cuTensorMapEncodeTiled failed, code " + std::to_string(result));
  return map;
}

// [rows, columns] row-major bf16, box `box_columns` x `box_rows`.
CUtensorMap matrix_map(const void* base, long long rows, long long columns, int box_columns, int box_rows) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(columns), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(columns) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_columns), static_cast<cuuint32_t>(box_rows)};
  return make_tensor_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base, 2, dims, strides, box);
}

// w [G, N, K] bf16, box `box_k` x `box_n` x 1.
CUtensorMap weights_map(const void* base, long long groups, long long n, long long k, int box_k, int box_n) {
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(n), static_cast<cuuint64_t>(groups)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(k) * 2, static_cast<cuuint64_t>(n * k) * 2};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(box_k), static_cast<cuuint32_t>(box_n), 1};
  return make_tensor_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base, 3, dims, strides, box);
}

// dw [G, N, K] fp32, box 32 (K: 128 bytes, the swizzle's limit) x 64 (N) x 1:
// the target of the weight gradient's reduce-adds; rows past N and columns
// past K lie outside the tensor, so no reduce reaches the next expert.
CUtensorMap weight_gradient_map(float* base, long long groups, long long n, long long k) {
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(n), static_cast<cuuint64_t>(groups)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(k) * 4, static_cast<cuuint64_t>(n * k) * 4};
  const cuuint32_t box[3] = {kStagingBoxColumns, 64, 1};
  return make_tensor_map(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, base, 3, dims, strides, box);
}

void check_sm90_arguments(const char* name, const void* out, const void* mma_a, const void* mma_b,
                          const std::int32_t* group_counts, std::int64_t num_groups, std::int64_t m_capacity,
                          std::int64_t n, std::int64_t k) {
  const std::string prefix = std::string(name) + ": ";
  if (num_groups < 1 || num_groups > kMaxGroupedGemmGroups) {
    throw Error(prefix + "num_groups=" + std::to_string(num_groups) + " must be in [1, " +
                std::to_string(kMaxGroupedGemmGroups) + "]");
  }
  if (m_capacity < 0 || m_capacity > INT_MAX) {
    throw Error(prefix + "m_capacity=" + std::to_string(m_capacity) + " must be in [0, 2^31)");
  }
  if (n < 8 || k < 8 || n % 8 != 0 || k % 8 != 0 || n > INT_MAX || k > INT_MAX) {
    throw Error(prefix + "n=" + std::to_string(n) + " and k=" + std::to_string(k) +
                " must be positive multiples of 8 (16-byte TMA strides); use the _cublaslt_loop path otherwise");
  }
  const void* pointers[] = {out, mma_a, mma_b, group_counts};
  const char* pointer_names[] = {"output", "first operand", "second operand", "group_counts"};
  for (int i = 0; i < 4; ++i) {
    if (pointers[i] == nullptr) throw Error(prefix + pointer_names[i] + " is null");
    if (i < 3 && reinterpret_cast<std::uintptr_t>(pointers[i]) % 16 != 0) {
      throw Error(prefix + pointer_names[i] + " is not 16-byte aligned");
    }
  }
  require_hopper(name);
}

template <Sm90Kind kKind>
void launch_sm90(const CUtensorMap& map_a, const CUtensorMap& map_b, const CUtensorMap& map_dw,
                 const Sm90Params& params, cudaStream_t stream) {
  constexpr bool kKGrouped = kKind == Sm90Kind::kKGroupedTN;
  const long long tiles_n = ceil_div(output_columns<kKind>(params.n, params.k), kBlockN);
  // Upper bound of the tiles the device will find: sum ceil(c/128) <= M/128 + G.
  const long long max_tiles =
      kKGrouped ? static_cast<long long>(params.num_groups) * ceil_div(params.n, kBlockM) * tiles_n
                : (ceil_div(params.m_capacity, kBlockM) + static_cast<long long>(params.num_groups)) * tiles_n;
  if (max_tiles == 0) return;

  const auto kernel = grouped_gemm_sm90_kernel<kKind>;
  using Layout = SharedLayout<kKind>;
  const int shared_bytes =
      kAlignmentSlack + Layout::kScheduleOffset + (params.num_groups + 1) * kScheduleBytesPerGroup;
  int device = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  allow_dynamic_shared_memory(kernel, Layout::kMaxBytes);
  int multiprocessors = 0;
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
  const int grid = static_cast<int>(std::min<long long>(multiprocessors, max_tiles));
  kernel<<<grid, kThreads, shared_bytes, stream>>>(map_a, map_b, map_dw, params);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

Sm90Params make_params(void* out, const std::int32_t* group_counts, std::int64_t num_groups, std::int64_t m_capacity,
                       std::int64_t n, std::int64_t k) {
  return {out,
          group_counts,
          static_cast<int>(num_groups),
          static_cast<int>(m_capacity),
          static_cast<int>(n),
          static_cast<int>(k)};
}

}  // namespace

void m_grouped_bf16_gemm_nt_contiguous_sm90(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* w,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream) {
  check_sm90_arguments("m_grouped_bf16_gemm_nt_contiguous_sm90", out, a, w, group_counts, num_groups, m_capacity, n,
                       k);
  if (m_capacity == 0) return;
  const CUtensorMap map_a = matrix_map(a, m_capacity, k, kBlockK, kBlockM);
  const CUtensorMap map_b = weights_map(w, num_groups, n, k, kBlockK, kBlockN);
  launch_sm90<Sm90Kind::kMGroupedNT>(map_a, map_b, CUtensorMap{},
                                     make_params(out, group_counts, num_groups, m_capacity, n, k), stream);
}

void m_grouped_bf16_gemm_nn_contiguous_sm90(__nv_bfloat16* da, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream) {
  check_sm90_arguments("m_grouped_bf16_gemm_nn_contiguous_sm90", da, dout, w, group_counts, num_groups, m_capacity,
                       n, k);
  if (m_capacity == 0) return;
  const CUtensorMap map_a = matrix_map(dout, m_capacity, n, kBlockK, kBlockM);
  const CUtensorMap map_b = weights_map(w, num_groups, n, k, 64, kBlockK);
  launch_sm90<Sm90Kind::kMGroupedNN>(map_a, map_b, CUtensorMap{},
                                     make_params(da, group_counts, num_groups, m_capacity, n, k), stream);
}

void k_grouped_bf16_gemm_tn_contiguous_sm90(float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream) {
  check_sm90_arguments("k_grouped_bf16_gemm_tn_contiguous_sm90", dw, dout, a, group_counts, num_groups, m_capacity,
                       n, k);
  if (m_capacity == 0) return;
  const CUtensorMap map_a = matrix_map(dout, m_capacity, n, 64, kBlockK);
  const CUtensorMap map_b = matrix_map(a, m_capacity, k, 64, kBlockK);
  const CUtensorMap map_dw = weight_gradient_map(dw, num_groups, n, k);
  launch_sm90<Sm90Kind::kKGroupedTN>(map_a, map_b, map_dw,
                                     make_params(dw, group_counts, num_groups, m_capacity, n, k), stream);
}

}  // namespace moebench::ops::cuda
