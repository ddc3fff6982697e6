#pragma once
// The device-side tile schedule both grouped GEMM versions (grouped_gemm.cu,
// grouped_gemm_sm90.cu) use: from the token counts on the device, one warp
// works out where each group's rows and output tiles start, so no host
// synchronisation is needed to learn the counts.
#include <cstdint>

namespace moebench::ops::cuda::grouped_schedule {

__device__ __forceinline__ long long warp_inclusive_scan(long long value, int lane) {
#pragma unroll
  for (int delta = 1; delta < 32; delta *= 2) {
    const long long up = __shfl_up_sync(0xffffffffu, value, delta);
    if (lane >= delta) value += up;
  }
  return value;
}

// Output tiles of one group with `rows` rows: M-grouped, ceil(rows/kBlockRows)
// x tiles_n; K-grouped, the whole [N, K] gradient when the group has rows.
template <bool kKGrouped, int kBlockRows>
__device__ __forceinline__ long long tiles_of_group(long long rows, int n, int tiles_n) {
  if constexpr (kKGrouped) {
    return rows > 0 ? static_cast<long long>(static_cast<int>((n + kBlockRows - 1) / kBlockRows)) * tiles_n : 0;
  } else {
    return static_cast<long long>(static_cast<int>((rows + kBlockRows - 1) / kBlockRows)) * tiles_n;
  }
}

// Called by warp 0: turns the device counts into row_start[G+1] (clamped to
// m_capacity) and tile_start[G+1] (exclusive prefix sum of each group's tile
// count). Each lane owns a contiguous run of groups; a warp scan of the lanes'
// row totals gives each run its first row, a second scan of tile totals its
// first tile. Negative counts count as 0.
template <bool kKGrouped, int kBlockRows>
__device__ void build_schedule(const std::int32_t* group_counts, int num_groups, long long m_capacity, int n,
                               int tiles_n, long long* tile_start, int* row_start) {
  const int lane = threadIdx.x % 32;
  const int per_lane = (num_groups + 31) / 32;
  const int first = min(lane * per_lane, num_groups), last = min(first + per_lane, num_groups);

  long long lane_rows = 0;
  for (int g = first; g < last; ++g) lane_rows += max(group_counts[g], 0);
  const long long rows_inclusive = warp_inclusive_scan(lane_rows, lane);

  long long lane_tiles = 0;
  long long end = rows_inclusive - lane_rows;
  for (int g = first; g < last; ++g) {
    const long long begin = min(end, m_capacity);
    end += max(group_counts[g], 0);
    row_start[g] = static_cast<int>(begin);
    tile_start[g] = lane_tiles;  // lane-local for now
    lane_tiles += tiles_of_group<kKGrouped, kBlockRows>(min(end, m_capacity) - begin, n, tiles_n);
  }
  const long long tiles_inclusive = warp_inclusive_scan(lane_tiles, lane);
  for (int g = first; g < last; ++g) tile_start[g] += tiles_inclusive - lane_tiles;
  if (lane == 31) {
    row_start[num_groups] = static_cast<int>(min(rows_inclusive, m_capacity));
    tile_start[num_groups] = tiles_inclusive;
  }
}

}  // namespace moebench::ops::cuda::grouped_schedule
