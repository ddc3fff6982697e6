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
//   - 128x256 output tile per CTA; 384 threads = 3 warpgroups: warpgroups 0
//     and 1 compute (rows 0-63 and 64-127 of the tile, one wgmma.mma_async
//     m64n256k16 bf16 -> fp32 per 16 of K, 128 accumulator registers per
//     thread), warpgroup 2 loads (one thread issues the operands' TMA, and
//     for the weight gradient a second one moves dw). setmaxnreg gives the
//     loaders 40 registers and the math 232.
//   - TMA (cp.async.bulk.tensor) into a ring of 4 stages, 128-byte swizzle:
//     K step 64 (48 KiB stages: A 16 KiB + B 32 KiB) for the M-grouped
//     kinds, 32 (24 KiB) for the weight gradient, whose dw staging takes
//     128 KiB. Per stage a "full" mbarrier (the producer's arrival + the
//     TMA's transaction bytes) and an "empty" one (one arrival per consumer
//     warp once its wgmmas on the stage are done; each warpgroup keeps one
//     k-block of wgmmas in flight, wait_group 1).
//   - Operand layouts: forward, both operands K-major (rows of 64 K values);
//     data gradient, w[g] is read N-major ([reduction rows][64 output
//     columns] boxes, wgmma's transposed-B layout); weight gradient, both
//     operands MN-major (boxes of 32 rows of the group x 64 columns of dout
//     or a, transposed A and B).
//   - Persistent CTAs, one per SM, each walking the tiles with stride
//     gridDim.x, with the device counts (no host sync). M-grouped: each CTA
//     prefix-sums the counts in shared memory (the schedule shared with v1)
//     and walks (group, m-tile, n-tile), m-tiles fastest; a group's last
//     m-tile reads rows of the next group (harmless: output row r depends
//     only on input row r) and is stored with a row predicate, so the next
//     group's rows are never written; rows past m_capacity arrive as TMA
//     zeros. The weights are a 3-D [G, N, K] tensor map, so reduction or
//     column overhang past N or K reads zeros, never the next expert.
//     K-grouped: every group owns ceil(N/128) x ceil(K/256) tiles of its
//     dw[g], walked n-tiles fastest (concurrent CTAs share a's columns and a
//     few slices of dout in L2), empty groups skipped, each group's first row
//     a running sum of the counts; a tile reduces over the group's rows in
//     steps of 32, and the last, partial step would read the next group's
//     rows, so the math warpgroups zero those rows of both operands in shared
//     memory before the wgmma (generic stores, fence.proxy.async, a named
//     barrier).
//   - M-grouped epilogue straight from the accumulators: predicated bf16x2
//     stores, while the producer already loads the next tile's stages.
//   - K-grouped epilogue (version 2.2): the fp32 traffic (8 bytes per dw
//     element: 7.5 GB for Mixtral fc1, as long as the maths at these shapes)
//     is a plain read and a plain write, moved by one thread of the producer
//     warpgroup through a staging of the whole tile (16 boxes of 64 x 32
//     fp32): while a tile computes, the mover stores the previous tile back
//     and loads this tile's current dw values; the epilogue only adds the
//     accumulators into the staging in place. Version 2.1 added with TMA
//     reduce-adds issued by the math (cp.reduce.async.bulk .add, the L2
//     reading and writing): 1.4-1.8 TB/s of dw traffic whatever the staging,
//     where plain copies reach 2.9 TB/s. dw is a 3-D [G, N, K] map: rows past
//     N and columns past K load as zeros and are not stored, never the next
//     expert's.
//   - Several micro-batches at once (version 2.3): the weight gradient takes
//     up to kMaxKGroupedSegments segments, each with its own operand tensor
//     maps, counts and capacity, and reduces each group's rows of every
//     segment in one tile, so dw moves once for all of them. Overwriting
//     (the first flush after zero_grad) is its own kind: no staging and no
//     mover, the accumulators stored straight into dw, and with the 128 KiB
//     of staging free it reduces 64 rows per stage like the M-grouped kinds.
//   - The sum of squares (version 2.4): the weight gradient optionally adds
//     the sum of the squares of the dw values it leaves into a device double
//     (per thread in fp32 per tile, in double across tiles, one atomic per
//     warp), so the gradient norm need not read dw again. While summing, the
//     adding kind also visits empty groups' tiles: their dw holds earlier
//     micro-batches' sums, moved back unchanged.
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
#include <cstdint>
#include <string>
#include <type_traits>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/cuda/block_reduce.cuh"
#include "moebench/ops/cuda/grouped_gemm_arguments.h"
#include "moebench/ops/cuda/grouped_gemm_schedule.cuh"
#include "moebench/ops/cuda/sm90_host.cuh"
#include "moebench/ops/cuda/sm90_primitives.cuh"
#include "moebench/ops/grouped_gemm.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kBlockM = 128;  // output rows per CTA tile: two math warpgroups of 64
constexpr int kBlockN = 256;  // output columns per CTA tile: one m64n256 wgmma per warpgroup
constexpr int kMathWarpgroups = 2;
constexpr int kThreads = 128 * (kMathWarpgroups + 1);
constexpr int kProducerRegisters = 40;
constexpr int kMathRegisters = 232;  // 128*40 + 256*232 = 64512 <= 65536
constexpr int kAtomBytes = 1024;     // 8 swizzled rows of 128 bytes
constexpr int kScheduleBytesPerGroup = sizeof(long long) + sizeof(int);
constexpr int kAlignmentSlack = 1024;  // dynamic shared memory is rounded up to a 1024-byte boundary
constexpr int kMaxDynamicSharedBytes = 227 * 1024;  // sm_90's per-block opt-in limit
// Weight-gradient staging: the whole 128 x 256 fp32 tile, as boxes of 64 rows
// x 32 columns (the 128-byte swizzle limits a box's inner extent to 128
// bytes), 8 boxes per math warpgroup.
constexpr int kStagingBoxColumns = 32;
constexpr int kStagingBoxBytes = 64 * kStagingBoxColumns * 4;  // 8 KiB
constexpr int kStagingBoxesPerWarpgroup = kBlockN / kStagingBoxColumns;
constexpr int kStagingBytesPerWarpgroup = kStagingBoxesPerWarpgroup * kStagingBoxBytes;  // 64 KiB
static_assert(kBlockM == kMathWarpgroups * 64, "each math warpgroup owns 64 rows");
static_assert(kMathRegisters % 8 == 0 && kProducerRegisters % 8 == 0, "setmaxnreg takes multiples of 8");
static_assert(128 * kProducerRegisters + 128 * kMathWarpgroups * kMathRegisters <= 65536, "register file");

// The weight gradient comes in two kinds: adding into dw (moved through a
// shared-memory staging by the mover thread) and overwriting it (stored
// straight from the accumulators, like the M-grouped epilogue: no staging,
// so it reduces 64 rows per stage as the M-grouped kinds do).
enum class Sm90Kind { kMGroupedNT, kMGroupedNN, kKGroupedTN, kKGroupedTNOverwrite };

// Shared memory of one kind (dynamic, from a 1024-byte boundary): A tiles
// [kStages], B tiles [kStages], the staged weight gradient's fp32 staging
// (the whole tile), full[kStages] and empty[kStages] mbarriers (+
// staging_full and staging_ready for the staged kind), then, M-grouped only,
// tile_start[G+1] (long long) and row_start[G+1] (int). The staged weight
// gradient reduces 32 rows per stage (24 KiB) so that four stages and its
// 128 KiB of staging fit; both weight-gradient kinds walk their tiles
// without a schedule in shared memory.
template <Sm90Kind kKind>
struct SharedLayout {
  static constexpr bool kKGrouped = kKind == Sm90Kind::kKGroupedTN || kKind == Sm90Kind::kKGroupedTNOverwrite;
  static constexpr bool kStaged = kKind == Sm90Kind::kKGroupedTN;  // dw through shared memory
  static constexpr int kBlockK = kStaged ? 32 : 64;  // reduction per stage; 64 bf16 = one 128-byte row
  static constexpr int kStages = 4;
  static constexpr int kATileBytes = kBlockM * kBlockK * 2;
  static constexpr int kBTileBytes = kBlockN * kBlockK * 2;
  static constexpr int kStageBytes = kATileBytes + kBTileBytes;
  static constexpr int kPipelineBytes = kStages * kStageBytes;
  static constexpr int kStagingBytes = kStaged ? kMathWarpgroups * kStagingBytesPerWarpgroup : 0;
  static constexpr int kBarrierBytes = (2 * kStages + (kStaged ? 2 : 0)) * 8;
  static constexpr int kScheduleOffset = kPipelineBytes + kStagingBytes + kBarrierBytes;
  static constexpr int kMaxBytes =
      kAlignmentSlack + kScheduleOffset + (kKGrouped ? 0 : (kMaxGroupedGemmGroups + 1) * kScheduleBytesPerGroup);
  static_assert(kMaxBytes <= kMaxDynamicSharedBytes, "shared memory of the largest schedule");
  static_assert(kATileBytes % kAtomBytes == 0 && kBTileBytes % kAtomBytes == 0, "tiles start on swizzle atoms");
};

// An MN-major box: `block_k` rows of the reduction x 64 columns of M or N.
__host__ __device__ constexpr int mn_major_box_bytes(int block_k) { return block_k * 64 * 2; }

// M-grouped kinds have one segment; the weight gradient sums num_segments
// micro-batches' rows into dw, each segment with its own counts, capacity
// and operand tensor maps (OperandMaps).
struct Sm90Params {
  void* out;  // bf16 [M, cols] (M-grouped); K-grouped: fp32 [G, N, K], reached through the dw tensor map
  int num_groups;
  int n;
  int k;
  int num_segments;
  const std::int32_t* group_counts[kMaxKGroupedSegments];  // on the device
  int m_capacity[kMaxKGroupedSegments];
  // K-grouped, optional: the sum of the squares of dw's values after the
  // kernel is added here (the gradient norm's share of these weights).
  double* squares;
};

// The token-side operands' tensor maps, one pair per segment (kernel
// parameters, as TMA needs: __grid_constant__).
struct OperandMaps {
  CUtensorMap a[kMaxKGroupedSegments];
  CUtensorMap b[kMaxKGroupedSegments];
};

__host__ __device__ constexpr int ceil_div(long long a, int b) { return static_cast<int>((a + b - 1) / b); }

// Output columns: N (forward), K (data gradient: da is [M, K]; weight
// gradient: dw[g] is [N, K]).
template <Sm90Kind kKind>
__host__ __device__ constexpr int output_columns(int n, int k) {
  return kKind == Sm90Kind::kMGroupedNT ? n : k;
}

// K-grouped: every group owns the tiles of its whole dw[g], ceil(N/128) x
// ceil(K/256); the tiles of an empty group are skipped.
__host__ __device__ constexpr long long k_grouped_tiles_per_group(int n, int k) {
  return static_cast<long long>(ceil_div(n, kBlockM)) * ceil_div(k, kBlockN);
}

// One output tile. m0/n0 are tile offsets in the output (for K-grouped: rows
// of dw[g] along N, columns along K). K-grouped: group_rows and k_blocks are
// summed over the segments (segment_rows gives each one's rows) and
// group_begin is unused.
struct Tile {
  int group, group_begin, group_rows, m0, n0, k_blocks;
};

// An empty group's tile is skipped, unless the weight gradient overwrites
// dw (its zeros are stored) or adds into dw while summing the squares (its
// dw holds earlier micro-batches' sums, which count too: added nothing, they
// are moved back unchanged).
template <Sm90Kind kKind>
__device__ __forceinline__ bool skipped(const Tile& t, const Sm90Params& p) {
  if (t.group_rows > 0 || kKind == Sm90Kind::kKGroupedTNOverwrite) return false;
  return !(kKind == Sm90Kind::kKGroupedTN && p.squares != nullptr);
}

// Where a CTA's walk over the tiles stands: tiles only increase, so the
// group and (K-grouped) the rows of the groups before it carry over.
struct TileCursor {
  int group = 0;
  // K-grouped, per segment: the rows of the groups < group, clamped to the
  // segment's capacity (as the M-grouped schedule clamps them).
  int rows_before[kMaxKGroupedSegments] = {};
};

// K-grouped: the rows [begin, begin + rows) of segment s that belong to
// `group`, the cursor standing at it.
struct RowSpan {
  int begin, rows;
};
__device__ __forceinline__ int clamped_end(int begin, int count, int capacity) {
  return static_cast<int>(min(static_cast<long long>(begin) + max(count, 0), static_cast<long long>(capacity)));
}
__device__ __forceinline__ RowSpan segment_rows(const TileCursor& cursor, int s, int group, const Sm90Params& p) {
  const int begin = cursor.rows_before[s];
  return {begin, clamped_end(begin, p.group_counts[s][group], p.m_capacity[s]) - begin};
}

// M-grouped tiles come from the schedule in shared memory (m-tiles fastest:
// concurrent CTAs share a slice of the weights). K-grouped tiles are walked
// group by group, fastest along the dimension with fewer tiles, so that the
// CTAs running at once cover whole rows (or columns) of the tile grid and
// share the operand slices of the other dimension in L2; a group's rows
// start at the running sum of the counts (clamped to m_capacity, as the
// schedule clamps them).
template <Sm90Kind kKind>
__device__ __forceinline__ Tile locate_tile(long long tile, TileCursor& cursor, const long long* tile_start,
                                            const int* row_start, const Sm90Params& p) {
  constexpr int kBlockK = SharedLayout<kKind>::kBlockK;
  Tile t;
  if constexpr (SharedLayout<kKind>::kKGrouped) {
    const long long per_group = k_grouped_tiles_per_group(p.n, p.k);
    const int group = static_cast<int>(tile / per_group);
    for (; cursor.group < group; ++cursor.group)
      for (int s = 0; s < p.num_segments; ++s)
        cursor.rows_before[s] = clamped_end(cursor.rows_before[s], p.group_counts[s][cursor.group], p.m_capacity[s]);
    const int tiles_m = ceil_div(p.n, kBlockM), tiles_n = ceil_div(p.k, kBlockN);
    const int local = static_cast<int>(tile - group * per_group);
    t.group = group;
    t.group_begin = 0;
    t.group_rows = 0;
    t.k_blocks = 0;
    for (int s = 0; s < p.num_segments; ++s) {
      const int rows = segment_rows(cursor, s, group, p).rows;
      t.group_rows += rows;
      t.k_blocks += ceil_div(rows, kBlockK);
    }
    if (tiles_n <= tiles_m) {
      t.n0 = (local % tiles_n) * kBlockN;
      t.m0 = (local / tiles_n) * kBlockM;
    } else {
      t.m0 = (local % tiles_m) * kBlockM;
      t.n0 = (local / tiles_m) * kBlockN;
    }
  } else {
    int& group = cursor.group;
    while (tile >= tile_start[group + 1]) ++group;
    t.group = group;
    t.group_begin = row_start[group];
    t.group_rows = row_start[group + 1] - row_start[group];
    const int tiles_m = ceil_div(t.group_rows, kBlockM);
    const int local = static_cast<int>(tile - tile_start[group]);
    t.m0 = (local % tiles_m) * kBlockM;
    t.n0 = (local / tiles_m) * kBlockN;
    t.k_blocks = ceil_div(kKind == Sm90Kind::kMGroupedNT ? p.k : p.n, kBlockK);
  }
  return t;
}

// Calls block(segment, first, valid_rows) for each k-block of a non-empty
// tile, in the one order the producer fills the ring and the math drains it.
// M-grouped: first = the block's offset along the reduction, all rows valid.
// K-grouped: first = the block's first row of its segment, each segment's
// rows of the group in steps of kBlockK; valid_rows < kBlockK on a
// segment's last, partial block (its other rows are the next group's).
template <Sm90Kind kKind, typename Block>
__device__ __forceinline__ void for_each_k_block(const Tile& t, const TileCursor& cursor, const Sm90Params& p,
                                                 Block&& block) {
  constexpr int kBlockK = SharedLayout<kKind>::kBlockK;
  if constexpr (SharedLayout<kKind>::kKGrouped) {
    for (int s = 0; s < p.num_segments; ++s) {
      const RowSpan span = segment_rows(cursor, s, t.group, p);
      for (int row = 0; row < span.rows; row += kBlockK) block(s, span.begin + row, span.rows - row);
    }
  } else {
    for (int kb = 0; kb < t.k_blocks; ++kb) block(0, kb * kBlockK, kBlockK);
  }
}

// All tiles of the kernel: from the schedule (M-grouped), or every group's
// tiles (K-grouped).
template <Sm90Kind kKind>
__device__ __forceinline__ long long total_tiles(const long long* tile_start, const Sm90Params& p) {
  if constexpr (SharedLayout<kKind>::kKGrouped) return p.num_groups * k_grouped_tiles_per_group(p.n, p.k);
  else return tile_start[p.num_groups];
}

// The producer: one thread walks the same tiles as the math warpgroups and
// fills stage (iteration % stages) of the ring for every k-block.
template <Sm90Kind kKind>
__device__ void produce(const OperandMaps& maps, const Sm90Params& p, const long long* tile_start,
                        const int* row_start, std::uint32_t a_tiles, std::uint32_t b_tiles, std::uint32_t full,
                        std::uint32_t empty) {
  using Layout = SharedLayout<kKind>;
  for (int s = 0; s < p.num_segments; ++s) {
    sm90::prefetch_tensor_map(&maps.a[s]);
    sm90::prefetch_tensor_map(&maps.b[s]);
  }
  const long long tiles = total_tiles<kKind>(tile_start, p);
  TileCursor cursor;
  std::uint32_t iteration = 0;  // k-blocks issued so far, over all tiles of this CTA
  for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const Tile t = locate_tile<kKind>(tile, cursor, tile_start, row_start, p);
    if (skipped<kKind>(t, p)) continue;
    for_each_k_block<kKind>(t, cursor, p, [&](int segment, int first, int) {
      const std::uint32_t stage = iteration % Layout::kStages;
      const std::uint32_t lap = (iteration / Layout::kStages) & 1;
      // Slot free? The consumers complete phase `lap` of empty[stage] when
      // they finish lap `lap` on it; on lap 0 we wait for parity 1, which a
      // fresh barrier reports as complete.
      sm90::mbarrier_wait(empty + stage * 8, lap ^ 1);
      const std::uint32_t full_barrier = full + stage * 8;
      sm90::mbarrier_arrive_expect_tx(full_barrier, Layout::kStageBytes);  // every box counts whole, zeros included
      const std::uint32_t a = a_tiles + stage * Layout::kATileBytes, b = b_tiles + stage * Layout::kBTileBytes;
      const CUtensorMap* map_a = &maps.a[segment];
      const CUtensorMap* map_b = &maps.b[segment];
      if constexpr (kKind == Sm90Kind::kMGroupedNT) {
        // a [M, K]: box 64 (K) x 128 (rows); w [G, N, K]: box 64 (K) x 256 (N) x 1.
        sm90::tma_load_2d(a, map_a, full_barrier, first, t.group_begin + t.m0);
        sm90::tma_load_3d(b, map_b, full_barrier, first, t.n0, t.group);
      } else if constexpr (kKind == Sm90Kind::kMGroupedNN) {
        // dout [M, N]: box 64 (N) x 128 (rows); w [G, N, K]: four boxes of 64 (K, the
        // output columns) x 64 (N, the reduction) x 1, N-major.
        constexpr int kBox = mn_major_box_bytes(Layout::kBlockK);
        sm90::tma_load_2d(a, map_a, full_barrier, first, t.group_begin + t.m0);
#pragma unroll
        for (int j = 0; j < kBlockN / 64; ++j)
          sm90::tma_load_3d(b + j * kBox, map_b, full_barrier, t.n0 + 64 * j, first, t.group);
      } else {
        // dout [M, N]: two boxes of 64 (N, output rows) x 32 (group rows), M-major;
        // a [M, K]: four boxes of 64 (K, output columns) x 32 (group rows), N-major.
        constexpr int kBox = mn_major_box_bytes(Layout::kBlockK);
#pragma unroll
        for (int j = 0; j < kBlockM / 64; ++j)
          sm90::tma_load_2d(a + j * kBox, map_a, full_barrier, t.m0 + 64 * j, first);
#pragma unroll
        for (int j = 0; j < kBlockN / 64; ++j)
          sm90::tma_load_2d(b + j * kBox, map_b, full_barrier, t.n0 + 64 * j, first);
      }
      ++iteration;
    });
  }
}

// Copies the 16 staging boxes of a K-grouped tile between shared memory and
// dw: loads (onto `barrier`) or stores. Stores skip boxes that start past N
// or K (the TMA unit skips the rest of the overhang); loads take every box,
// zeros outside, so that the expected byte count is the whole staging.
template <bool kLoad>
__device__ __forceinline__ void copy_staging(const CUtensorMap* map_dw, const Tile& t, const Sm90Params& p,
                                             std::uint32_t staging, std::uint32_t barrier) {
#pragma unroll
  for (int w = 0; w < kMathWarpgroups; ++w) {
#pragma unroll
    for (int box = 0; box < kStagingBoxesPerWarpgroup; ++box) {
      const std::uint32_t address = staging + (w * kStagingBoxesPerWarpgroup + box) * kStagingBoxBytes;
      const int column = t.n0 + box * kStagingBoxColumns, row = t.m0 + 64 * w;
      if constexpr (kLoad) sm90::tma_load_3d(address, map_dw, barrier, column, row, t.group);
      else if (row < p.n && column < p.k) sm90::tma_store_3d(map_dw, address, column, row, t.group);
    }
  }
}

// The staged weight gradient only, one thread of the producer warpgroup,
// dw's mover: for each tile, once the math has added the previous tile into
// the staging (staging_ready), stores that tile back to dw and, when the TMA
// unit has read it out, loads this tile's dw values (staging_full). Both copies run
// while the math computes this tile, so the fp32 traffic is off its path;
// the waits are this thread's, never the math's.
__device__ void move_weight_gradient_tiles(const CUtensorMap* map_dw, const Sm90Params& p, std::uint32_t staging,
                                           std::uint32_t staging_full, std::uint32_t staging_ready) {
  constexpr Sm90Kind kKind = Sm90Kind::kKGroupedTN;
  sm90::prefetch_tensor_map(map_dw);
  const long long tiles = total_tiles<kKind>(nullptr, p);
  TileCursor cursor;
  Tile previous{};
  bool has_previous = false;
  std::uint32_t ready_lap = 0;
  const auto store_previous = [&] {
    sm90::mbarrier_wait(staging_ready, ready_lap);
    ready_lap ^= 1;
    copy_staging<false>(map_dw, previous, p, staging, 0);
    sm90::bulk_commit_group();
  };
  for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const Tile t = locate_tile<kKind>(tile, cursor, nullptr, nullptr, p);
    if (skipped<kKind>(t, p)) continue;
    if (has_previous) {
      store_previous();
      sm90::bulk_wait_group_read<0>();  // the staging is free again
    }
    sm90::mbarrier_arrive_expect_tx(staging_full, kMathWarpgroups * kStagingBytesPerWarpgroup);
    copy_staging<true>(map_dw, t, p, staging, staging_full);
    previous = t;
    has_previous = true;
  }
  if (has_previous) {
    store_previous();
    sm90::bulk_wait_group<0>();  // the last stores reach dw before the kernel ends
  }
}

// K-grouped only: zero the 128-byte rows [valid_rows, kBlockK) of every box of
// the stage (2 A boxes, 4 B boxes; a box row is one reduction row), i.e. the
// rows of the next group that the last, partial k-block loaded. Swizzling
// permutes chunks within a row, so whole rows stay whole rows. Run by the
// 256 math threads, then fenced for the async proxy and synchronised.
template <int kBlockK>
__device__ __forceinline__ void zero_rows_past_group(std::uint32_t a, std::uint32_t b, int valid_rows,
                                                     int math_thread) {
  constexpr int kBox = mn_major_box_bytes(kBlockK);
  constexpr int kBoxes = (kBlockM + kBlockN) / 64;
  const int chunks_per_box = (kBlockK - valid_rows) * 8;  // 16-byte chunks
  for (int chunk = math_thread; chunk < kBoxes * chunks_per_box; chunk += 128 * kMathWarpgroups) {
    const int box = chunk / chunks_per_box, within = chunk % chunks_per_box;
    const std::uint32_t base = box < kBlockM / 64 ? a + box * kBox : b + (box - kBlockM / 64) * kBox;
    const std::uint32_t address = base + valid_rows * 128 + within * 16;
    asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(address), "r"(0) : "memory");
  }
  sm90::fence_proxy_async_shared();              // our generic stores, before wgmma's async-proxy reads
  sm90::named_barrier_sync(1, 128 * kMathWarpgroups);  // everyone's zeros, before anyone's wgmma
}

// K-grouped epilogue of one math warpgroup: its 64 rows of the tile's dw
// values, which the mover has brought into the warpgroup's staging (8 boxes
// of 64 x 32 fp32, 128-byte swizzled: 16-byte chunk c of row r at chunk
// c ^ (r % 8)), += its accumulators, in place (ld/st.shared.v2: a warp's 8
// rows x 32 bytes cover every bank twice, no conflict beyond the two
// wavefronts). Each thread fences its stores for the async proxy and arrives
// on staging_ready; the mover stores the tile back while the math goes on.
// Returns the sum of the squares of the thread's new dw values (rows and
// columns past dw hold zeros: loaded as zeros, with zero accumulators).
__device__ __forceinline__ float add_tile_into_staging(const float (&acc)[128], std::uint32_t staging,
                                                       std::uint32_t staging_ready, int warp, int lane) {
  // Register i: row 16*warp + lane/4 + 8*((i/2)%2), column 8*(i/4) +
  // 2*(lane%4) + (i%2) of the warpgroup's 64 x 256; row % 8 == lane / 4.
  const std::uint32_t row_offset = (warp * 16 + lane / 4) * 128 + (lane % 2) * 8;
  const int chunk_bit = (lane % 4) / 2;  // the 16-byte chunk's low bit within a 32-byte column group
  float squares = 0.0f;
#pragma unroll
  for (int j = 0; j < kBlockN / 8; ++j) {  // accumulator column group: columns 8j..8j+7
    const int box = j / (kStagingBoxColumns / 8);
    const int chunk = 2 * (j % (kStagingBoxColumns / 8)) + chunk_bit;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const std::uint32_t address =
          staging + box * kStagingBoxBytes + row_offset + half * 8 * 128 + (chunk ^ (lane / 4)) * 16;
      float x, y;
      asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(x), "=f"(y) : "r"(address) : "memory");
      x += acc[4 * j + 2 * half];
      y += acc[4 * j + 2 * half + 1];
      asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(x), "f"(y) : "memory");
      squares += x * x + y * y;
    }
  }
  sm90::fence_proxy_async_shared();  // our stores, before the TMA unit reads them
  sm90::mbarrier_arrive(staging_ready);
  return squares;
}

// The sum of the squares of a warpgroup's accumulators (the overwritten dw
// values; those past dw are zeros: zero operands).
__device__ __forceinline__ float sum_of_squares(const float (&acc)[128]) {
  float squares = 0.0f;
#pragma unroll
  for (int i = 0; i < 128; ++i) squares += acc[i] * acc[i];
  return squares;
}

// A math warpgroup's 64 x 256 accumulators stored at `out` (the tile's
// first element, rows `stride` apart) as bf16 or fp32 pairs, rows <
// rows_valid and columns < cols_valid only. Register i: row 16*warp + lane/4
// + 8*((i/2)%2), column 8*(i/4) + 2*(lane%4) + (i%2) of the warpgroup's part.
template <typename T>
__device__ __forceinline__ void store_accumulators(const float (&acc)[128], T* out, long long stride, int rows_valid,
                                                   int cols_valid, int warpgroup, int warp, int lane) {
  const int row_in_tile = warpgroup * 64 + warp * 16 + lane / 4;
  const int column_in_tile = 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < kBlockN / 8; ++j) {
    const int column = column_in_tile + 8 * j;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row_in_tile + 8 * half;
      if (row < rows_valid && column < cols_valid) {
        T* element = out + static_cast<long long>(row) * stride + column;
        if constexpr (std::is_same_v<T, float>) {
          *reinterpret_cast<float2*>(element) = make_float2(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
        } else {
          *reinterpret_cast<__nv_bfloat162*>(element) =
              __floats2bfloat162_rn(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
        }
      }
    }
  }
}

// The math warpgroups: for each tile, accumulate 64x256 per warpgroup over
// the k-blocks, then store (M-grouped) or add into dw (K-grouped, through
// `staging`, this warpgroup's 64 KiB of the staging).
template <Sm90Kind kKind>
__device__ void consume(const Sm90Params& p, const long long* tile_start, const int* row_start,
                        std::uint32_t a_tiles, std::uint32_t b_tiles, std::uint32_t staging, std::uint32_t full,
                        std::uint32_t empty, std::uint32_t staging_full, std::uint32_t staging_ready) {
  using Layout = SharedLayout<kKind>;
  constexpr bool kKGrouped = Layout::kKGrouped;
  constexpr int kTransposeA = kKGrouped ? 1 : 0;                           // dout^T is M-major
  constexpr int kTransposeB = kKind == Sm90Kind::kMGroupedNT ? 0 : 1;      // w (dgrad) and a (wgrad) N-major
  const int warpgroup = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const long long tiles = total_tiles<kKind>(tile_start, p);
  const int out_cols = output_columns<kKind>(p.n, p.k);

  float acc[128];
  double squares = 0.0;  // K-grouped: of the dw values this thread wrote, over its tiles
  TileCursor cursor;
  std::uint32_t iteration = 0;    // k-blocks consumed so far: the same sequence as the producer's
  std::uint32_t staging_lap = 0;  // K-grouped: tiles added into dw so far, mod 2
  for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const Tile t = locate_tile<kKind>(tile, cursor, tile_start, row_start, p);
    if (skipped<kKind>(t, p)) continue;
#pragma unroll
    for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

    std::uint32_t previous_stage = 0;  // the stage of the k-block whose wgmmas may still run
    int blocks_done = 0;               // of this tile; none only for an empty group's overwritten tile
    for_each_k_block<kKind>(t, cursor, p, [&](int, int, int valid_rows) {
      const std::uint32_t stage = iteration % Layout::kStages;
      const std::uint32_t lap = (iteration / Layout::kStages) & 1;
      sm90::mbarrier_wait(full + stage * 8, lap);  // TMA bytes of this lap have landed (acquire)
      const std::uint32_t a = a_tiles + stage * Layout::kATileBytes, b = b_tiles + stage * Layout::kBTileBytes;
      if constexpr (kKGrouped) {
        if (valid_rows < Layout::kBlockK)
          zero_rows_past_group<Layout::kBlockK>(a, b, valid_rows, threadIdx.x);  // uniform over the 256
      }
      // Orders earlier register writes to the accumulators (the zeroing) and
      // the generic-proxy zeroing of the stage before the wgmmas below.
      sm90::fence_registers(acc);
      sm90::wgmma_fence();
#pragma unroll
      for (int s = 0; s < Layout::kBlockK / 16; ++s) {
        std::uint64_t descriptor_a, descriptor_b;
        if constexpr (kTransposeA == 0) {
          // K-major A: this warpgroup's 64 rows start 64*128 bytes in; K step = 32 bytes.
          descriptor_a = sm90::make_smem_descriptor_128b(a + warpgroup * 64 * 128 + s * 32, 16, kAtomBytes);
        } else {
          // M-major A: this warpgroup's 64 rows are box `warpgroup`; K step = 16 box rows.
          constexpr int kBox = mn_major_box_bytes(Layout::kBlockK);
          descriptor_a = sm90::make_smem_descriptor_128b(a + warpgroup * kBox + s * 16 * 128, kBox, kAtomBytes);
        }
        if constexpr (kTransposeB == 0) {
          // K-major B: 256 rows of 128 bytes, 8-row atoms 1024 bytes apart.
          descriptor_b = sm90::make_smem_descriptor_128b(b + s * 32, 16, kAtomBytes);
        } else {
          // N-major B: four boxes of 64 columns (LBO = one box apart), K step = 16 box rows.
          constexpr int kBox = mn_major_box_bytes(Layout::kBlockK);
          descriptor_b = sm90::make_smem_descriptor_128b(b + s * 16 * 128, kBox, kAtomBytes);
        }
        sm90::wgmma_m64n256k16_bf16<kTransposeA, kTransposeB>(acc, descriptor_a, descriptor_b);
      }
      sm90::wgmma_commit_group();  // the wgmmas of this k-block form one group
      // Keep this k-block's group in flight and wait for the previous one:
      // its stage is no longer read and goes back to the producer.
      sm90::wgmma_wait_group<1>();
      sm90::fence_registers(acc);
      if (blocks_done > 0 && lane == 0) sm90::mbarrier_arrive(empty + previous_stage * 8);  // one arrival per math warp
      previous_stage = stage;
      ++blocks_done;
      ++iteration;
    });
    sm90::wgmma_wait_group<0>();  // the tile's last group: accumulators final
    sm90::fence_registers(acc);   // no accumulator read may move above the wait
    if (blocks_done > 0 && lane == 0) sm90::mbarrier_arrive(empty + previous_stage * 8);

    if constexpr (Layout::kStaged) {
      sm90::mbarrier_wait(staging_full, staging_lap);  // the tile's dw values have landed
      staging_lap ^= 1;
      squares += add_tile_into_staging(acc, staging, staging_ready, warp, lane);
    } else if constexpr (kKGrouped) {
      // dw[g] is [N, K]: the tile's rows run along N, its columns along K.
      float* dw = static_cast<float*>(p.out) + (static_cast<long long>(t.group) * p.n + t.m0) * p.k + t.n0;
      store_accumulators(acc, dw, p.k, p.n - t.m0, p.k - t.n0, warpgroup, warp, lane);
      squares += sum_of_squares(acc);
    } else {
      // Rows never past the group: the next group's rows follow.
      __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out) +
                           (static_cast<long long>(t.group_begin) + t.m0) * out_cols + t.n0;
      store_accumulators(acc, out, out_cols, t.group_rows - t.m0, out_cols - t.n0, warpgroup, warp, lane);
    }
  }
  if constexpr (kKGrouped) {
    // One atomic per warp for the whole kernel: per-tile sums in fp32, added
    // in double across the tiles and warps.
    squares = warp_sum(squares);
    if (p.squares != nullptr && lane == 0) atomicAdd(p.squares, squares);
  }
}

// Shared memory as SharedLayout<kKind> says. map_dw: the fp32 [G, N, K]
// weight gradient (the staged kind only; unused by the others).
template <Sm90Kind kKind>
__global__ void __launch_bounds__(kThreads, 1)
    grouped_gemm_sm90_kernel(const __grid_constant__ OperandMaps maps, const __grid_constant__ CUtensorMap map_dw,
                             const __grid_constant__ Sm90Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char raw_shared[];
  const std::uint32_t raw = sm90::shared_address(raw_shared);
  const std::uint32_t base = (raw + kAtomBytes - 1) & ~static_cast<std::uint32_t>(kAtomBytes - 1);
  unsigned char* shared = raw_shared + (base - raw);
  using Layout = SharedLayout<kKind>;
  constexpr int kStages = Layout::kStages;
  const std::uint32_t a_tiles = base;
  const std::uint32_t b_tiles = base + kStages * Layout::kATileBytes;
  const std::uint32_t staging = base + Layout::kPipelineBytes;
  const std::uint32_t full = staging + Layout::kStagingBytes;
  const std::uint32_t empty = full + kStages * 8;
  const std::uint32_t staging_full = empty + kStages * 8;  // staged weight gradient only
  const std::uint32_t staging_ready = staging_full + 8;    // staged weight gradient only
  long long* tile_start = reinterpret_cast<long long*>(shared + Layout::kScheduleOffset);
  int* row_start = reinterpret_cast<int*>(tile_start + p.num_groups + 1);

  if constexpr (!Layout::kKGrouped) {
    if (threadIdx.x < 32) {
      grouped_schedule::build_schedule<false, kBlockM>(p.group_counts[0], p.num_groups, p.m_capacity[0], p.n,
                                                       ceil_div(output_columns<kKind>(p.n, p.k), kBlockN),
                                                       tile_start, row_start);
    }
  }
  if (threadIdx.x == 32) {
    for (int s = 0; s < kStages; ++s) {
      sm90::mbarrier_init(full + s * 8, 1);                     // the producer's arrive.expect_tx
      sm90::mbarrier_init(empty + s * 8, kMathWarpgroups * 4);  // one arrival per math warp
    }
    if constexpr (Layout::kStaged) {
      sm90::mbarrier_init(staging_full, 1);                      // the mover's arrive.expect_tx
      sm90::mbarrier_init(staging_ready, 128 * kMathWarpgroups);  // every math thread, its sums staged
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();  // schedule and barriers ready for every role

  if (threadIdx.x / 128 == kMathWarpgroups) {
    sm90::warpgroup_release_registers<kProducerRegisters>();
    if (threadIdx.x == kMathWarpgroups * 128) {
      produce<kKind>(maps, p, tile_start, row_start, a_tiles, b_tiles, full, empty);
    } else if (Layout::kStaged && threadIdx.x == kMathWarpgroups * 128 + 32) {
      move_weight_gradient_tiles(&map_dw, p, staging, staging_full, staging_ready);
    }
  } else {
    sm90::warpgroup_claim_registers<kMathRegisters>();
    const std::uint32_t warpgroup_staging = staging + (threadIdx.x / 128) * kStagingBytesPerWarpgroup;
    consume<kKind>(p, tile_start, row_start, a_tiles, b_tiles, warpgroup_staging, full, empty, staging_full,
                   staging_ready);
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
  if (result != CUDA_SUCCESS)
    throw Error("grouped gemm sm90: cuTensorMapEncodeTiled failed, code " + std::to_string(result));
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
// what the weight gradient loads and stores back; rows past N and columns
// past K lie outside the tensor (loaded as zeros, never stored), so no
// store reaches the next expert.
CUtensorMap weight_gradient_map(float* base, long long groups, long long n, long long k) {
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(n), static_cast<cuuint64_t>(groups)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(k) * 4, static_cast<cuuint64_t>(n * k) * 4};
  const cuuint32_t box[3] = {kStagingBoxColumns, 64, 1};
  return make_tensor_map(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, base, 3, dims, strides, box);
}

// The shared contract, and a Hopper GPU.
void check_sm90_arguments(const char* name, const void* out, const void* mma_a, const void* mma_b,
                          const std::int32_t* group_counts, std::int64_t num_groups, std::int64_t m_capacity,
                          std::int64_t n, std::int64_t k) {
  check_grouped_gemm_arguments(name, out, mma_a, mma_b, group_counts, num_groups, m_capacity, n, k);
  require_hopper(name);
}

template <Sm90Kind kKind>
void launch_sm90(const OperandMaps& maps, const CUtensorMap& map_dw, const Sm90Params& params, cudaStream_t stream) {
  constexpr bool kKGrouped = SharedLayout<kKind>::kKGrouped;
  const long long tiles_n = ceil_div(output_columns<kKind>(params.n, params.k), kBlockN);
  // K-grouped: every group's tiles; M-grouped: an upper bound of the tiles
  // the device will find, sum ceil(c/128) <= M/128 + G.
  const long long max_tiles =
      kKGrouped ? params.num_groups * k_grouped_tiles_per_group(params.n, params.k)
                : (ceil_div(params.m_capacity[0], kBlockM) + static_cast<long long>(params.num_groups)) * tiles_n;
  if (max_tiles == 0) return;

  const auto kernel = grouped_gemm_sm90_kernel<kKind>;
  using Layout = SharedLayout<kKind>;
  const int shared_bytes =
      kAlignmentSlack + Layout::kScheduleOffset + (kKGrouped ? 0 : (params.num_groups + 1) * kScheduleBytesPerGroup);
  int device = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  allow_dynamic_shared_memory(kernel, Layout::kMaxBytes);
  int multiprocessors = 0;
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
  const int grid = static_cast<int>(std::min<long long>(multiprocessors, max_tiles));
  kernel<<<grid, kThreads, shared_bytes, stream>>>(maps, map_dw, params);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

// Parameters with no segment yet; add_segment appends them.
Sm90Params make_params(void* out, std::int64_t num_groups, std::int64_t n, std::int64_t k) {
  Sm90Params params{};
  params.out = out;
  params.num_groups = static_cast<int>(num_groups);
  params.n = static_cast<int>(n);
  params.k = static_cast<int>(k);
  return params;
}

void add_segment(Sm90Params& params, OperandMaps& maps, const CUtensorMap& map_a, const CUtensorMap& map_b,
                 const std::int32_t* group_counts, std::int64_t m_capacity) {
  const int s = params.num_segments++;
  maps.a[s] = map_a;
  maps.b[s] = map_b;
  params.group_counts[s] = group_counts;
  params.m_capacity[s] = static_cast<int>(m_capacity);
}

// An M-grouped product: one segment.
template <Sm90Kind kKind>
void launch_m_grouped(void* out, const CUtensorMap& map_a, const CUtensorMap& map_b, const std::int32_t* group_counts,
                      std::int64_t num_groups, std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                      cudaStream_t stream) {
  Sm90Params params = make_params(out, num_groups, n, k);
  OperandMaps maps{};
  add_segment(params, maps, map_a, map_b, group_counts, m_capacity);
  launch_sm90<kKind>(maps, CUtensorMap{}, params, stream);
}

}  // namespace

void m_grouped_bf16_gemm_nt_contiguous_sm90(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* w,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream) {
  check_sm90_arguments("m_grouped_bf16_gemm_nt_contiguous_sm90", out, a, w, group_counts, num_groups, m_capacity, n,
                       k);
  if (m_capacity == 0) return;
  constexpr int kBlockK = SharedLayout<Sm90Kind::kMGroupedNT>::kBlockK;
  const CUtensorMap map_a = matrix_map(a, m_capacity, k, kBlockK, kBlockM);
  const CUtensorMap map_b = weights_map(w, num_groups, n, k, kBlockK, kBlockN);
  launch_m_grouped<Sm90Kind::kMGroupedNT>(out, map_a, map_b, group_counts, num_groups, m_capacity, n, k, stream);
}

void m_grouped_bf16_gemm_nn_contiguous_sm90(__nv_bfloat16* da, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream) {
  check_sm90_arguments("m_grouped_bf16_gemm_nn_contiguous_sm90", da, dout, w, group_counts, num_groups, m_capacity,
                       n, k);
  if (m_capacity == 0) return;
  constexpr int kBlockK = SharedLayout<Sm90Kind::kMGroupedNN>::kBlockK;
  const CUtensorMap map_a = matrix_map(dout, m_capacity, n, kBlockK, kBlockM);
  const CUtensorMap map_b = weights_map(w, num_groups, n, k, 64, kBlockK);
  launch_m_grouped<Sm90Kind::kMGroupedNN>(da, map_a, map_b, group_counts, num_groups, m_capacity, n, k, stream);
}

void k_grouped_bf16_gemm_tn_contiguous_sm90(float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream) {
  const KGroupedSegment segment{dout, a, group_counts, m_capacity};
  k_grouped_bf16_gemm_tn_contiguous_sm90(dw, &segment, 1, /*accumulate=*/true, num_groups, n, k, nullptr, stream);
}

void k_grouped_bf16_gemm_tn_contiguous_sm90(float* dw, const KGroupedSegment* segments, int num_segments,
                                            bool accumulate, std::int64_t num_groups, std::int64_t n, std::int64_t k,
                                            double* squares, cudaStream_t stream) {
  const char* name = "k_grouped_bf16_gemm_tn_contiguous_sm90";
  if (num_segments < 0 || (num_segments > 0 && segments == nullptr))
    throw Error(std::string(name) + ": num_segments=" + std::to_string(num_segments) +
                " must be >= 0, with that many segments");
  if (dw == nullptr) throw Error(std::string(name) + ": dw is null");
  // Overwriting launches once even without segments: it stores the zeros;
  // so does summing the squares: it reads them.
  for (int first = 0; first < num_segments || (first == 0 && (!accumulate || squares)); first += kMaxKGroupedSegments) {
    const bool overwrite = !accumulate && first == 0;  // later launches add to the first one's sums
    const bool last = first + kMaxKGroupedSegments >= num_segments;
    const int block_k = overwrite ? SharedLayout<Sm90Kind::kKGroupedTNOverwrite>::kBlockK
                                  : SharedLayout<Sm90Kind::kKGroupedTN>::kBlockK;
    Sm90Params params = make_params(dw, num_groups, n, k);
    if (last) params.squares = squares;  // of the final values
    OperandMaps maps{};
    for (int s = first; s < std::min(num_segments, first + kMaxKGroupedSegments); ++s) {
      const KGroupedSegment& segment = segments[s];
      check_sm90_arguments(name, dw, segment.dout, segment.a, segment.group_counts, num_groups, segment.m_capacity, n,
                           k);
      if (segment.m_capacity == 0) continue;  // no rows: nothing to add
      add_segment(params, maps, matrix_map(segment.dout, segment.m_capacity, n, 64, block_k),
                  matrix_map(segment.a, segment.m_capacity, k, 64, block_k), segment.group_counts, segment.m_capacity);
    }
    if (overwrite) {
      launch_sm90<Sm90Kind::kKGroupedTNOverwrite>(maps, CUtensorMap{}, params, stream);
    } else if (params.num_segments > 0 || params.squares) {
      launch_sm90<Sm90Kind::kKGroupedTN>(maps, weight_gradient_map(dw, num_groups, n, k), params, stream);
    }
  }
}

}  // namespace moebench::ops::cuda
