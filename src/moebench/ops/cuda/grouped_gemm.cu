// Grouped GEMMs of the routed experts with the token counts on the device:
//
//   m_grouped_bf16_gemm_nt_contiguous  out[M, N]   = a[M, K] @ w[g][N, K]^T   (forward)
//   m_grouped_bf16_gemm_nn_contiguous  da[M, K]    = dout[M, N] @ w[g][N, K]  (data gradient)
//   k_grouped_bf16_gemm_tn_contiguous  dw[g][N, K] += dout_g^T @ a_g          (weight gradient, fp32)
//
// group g owns the rows [offset[g], offset[g] + counts[g]) of the token-side
// buffers, offset = exclusive prefix sum of the device counts; contracts in
// ops/grouped_gemm.h.
//
// Version 1 (this file): one kernel template for the three, on Ampere-style
// tensor-core instructions.
//   - 128x128 output tile, K step 64, 256 threads = 8 warps of 64x32,
//     mma.sync m16n8k16 bf16 with fp32 accumulators in registers; capped at
//     128 registers for two CTAs per SM (ptxas, CUDA 13.0: 32-108 bytes of
//     spills, loader addresses; uncapped it takes 216-240 registers).
//   - cp.async 16-byte copies into a 3-stage shared-memory ring (96 KiB, two
//     CTAs per SM); out-of-range chunks are zero-filled, so ragged group ends
//     and tile edges need no special path.
//   - Shared tiles are panels of 64 bf16 columns (128-byte rows) whose 16-byte
//     chunks are XOR-swizzled by row % 8, so cp.async stores and ldmatrix
//     reads are free of bank conflicts for both operand orders: K-major
//     operands (rows along M or N) use ldmatrix, MN-major ones (rows along
//     K, as in the weight gradient) use ldmatrix.trans.
//   - Persistent tile scheduler: every CTA reads the counts, prefix-sums them
//     in shared memory (one warp) and walks the flattened (group, m-tile,
//     n-tile) space with stride gridDim.x; the host never learns the counts.
//     M-grouped: group g has ceil(rows/128) x ceil(cols/128) tiles, m-tiles
//     fastest so concurrent CTAs share a weight panel in L2. K-grouped: every
//     non-empty group has ceil(N/128) x ceil(K/128) output tiles, each
//     reducing over that group's rows.
// Version 2: grouped_gemm_sm90.cu (Hopper wgmma + TMA, warp-specialised
// persistent kernel), entries suffixed _sm90.
// The `_cublaslt_loop` entries are the Megatron-style reference: counts copied
// to the host once, one cuBLASLt GEMM per group.
//
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1 -c grouped_gemm.cu
// Check and time: tests/gpu/grouped_gemm_test.cpp (GroupedGemmTest.*, GroupedGemmTiming.ProxyShapes).
#include <algorithm>
#include <type_traits>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "moebench/core/cuda_check.h"
#include "moebench/ops/cuda/grouped_gemm_arguments.h"
#include "moebench/ops/cuda/grouped_gemm_schedule.cuh"
#include "moebench/ops/grouped_gemm.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = 128;
constexpr int kBlockK = 64;
constexpr int kStages = 3;
constexpr int kThreads = 256;
constexpr int kWarpTileM = 64;  // warps laid out 2 (M) x 4 (N)
constexpr int kWarpTileN = 32;
constexpr int kPanelColumns = 64;                              // bf16 per 128-byte shared row
constexpr int kTileBytes = kBlockM * kBlockK * 2;              // 16 KiB, A and B tiles alike
constexpr int kStageBytes = 2 * kTileBytes;
constexpr int kPipelineBytes = kStages * kStageBytes;          // 96 KiB
constexpr int kScheduleBytesPerGroup = sizeof(long long) + sizeof(int);  // tile start + row start
static_assert(kBlockM == kBlockN, "A and B tiles share one size and one loader");
static_assert(kBlockM * kBlockK / 8 == 4 * kThreads, "each thread copies four 16-byte chunks per tile");
static_assert(kBlockK == kPanelColumns, "a K-major tile is one panel wide");

enum class GroupedKind { kMGroupedNT, kMGroupedNN, kKGroupedTN };

struct GroupedGemmParams {
  void* out;                    // bf16 [M, cols] (M-grouped) or fp32 [G, N, K] (K-grouped)
  const __nv_bfloat16* mma_a;   // gives the output rows: a (fwd), dout (dgrad, wgrad)
  const __nv_bfloat16* mma_b;   // gives the output columns: w (fwd, dgrad), a (wgrad)
  const std::int32_t* group_counts;
  int num_groups;
  int m_capacity;
  int n;
  int k;
};

// One operand's view for one output tile: element (mn, kk) of the tile sits at
// base[mn * ld + kk] (K-major) or base[kk * ld + mn] (MN-major); elements with
// mn >= mn_valid or kk >= k_valid read as zero.
struct OperandTile {
  const __nv_bfloat16* base;
  long long ld;
  int mn_valid;
  int k_valid;
};

__host__ __device__ constexpr int ceil_div(long long a, int b) { return static_cast<int>((a + b - 1) / b); }

// Element offset of (row, col) in a tile stored as panels of 64 columns,
// `rows_per_panel` rows each, chunk index XOR-swizzled by row % 8.
__device__ __forceinline__ int swizzled_offset(int row, int col, int rows_per_panel) {
  return (col / kPanelColumns) * rows_per_panel * kPanelColumns + row * kPanelColumns +
         ((((col % kPanelColumns) / 8) ^ (row % 8)) * 8);
}

__device__ __forceinline__ void cp_async_16(std::uint32_t shared_address, const void* global, bool valid) {
  const int source_bytes = valid ? 16 : 0;  // 0: fill the 16 bytes with zeros
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address), "l"(global),
               "r"(source_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], std::uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], std::uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// d[16x8] += a[16x16] @ b[16x8], bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                  std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies the k-block starting at k0 of one operand into a shared tile: 128 x 64
// elements, four 16-byte chunks per thread. K-major: 128 rows (mn) of 8 chunks
// (k). MN-major: 64 rows (k) of 16 chunks (mn), as two 64-column panels.
template <bool kKMajor>
__device__ __forceinline__ void load_operand_tile(std::uint32_t tile, const OperandTile& operand, int k0) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int chunk = threadIdx.x + i * kThreads;
    int mn, kk, offset;
    if constexpr (kKMajor) {
      const int row = chunk / 8, column = (chunk % 8) * 8;
      mn = row, kk = k0 + column;
      offset = swizzled_offset(row, column, kBlockM);
    } else {
      const int row = chunk / 16, column = (chunk % 16) * 8;
      mn = column, kk = k0 + row;
      offset = swizzled_offset(row, column, kBlockK);
    }
    // n and k are multiples of 8, so a chunk is wholly inside or wholly outside.
    const bool valid = mn < operand.mn_valid && kk < operand.k_valid;
    const __nv_bfloat16* source =
        !valid ? operand.base : operand.base + (kKMajor ? mn * operand.ld + kk : kk * operand.ld + mn);
    cp_async_16(tile + offset * 2, source, valid);
  }
}

// One K step of 64 on the stage's tiles: per 16-wide slice, 4 B fragments
// (k16n8) per warp, then 4 A fragments (m16k16) one at a time with their 4
// MMAs each, so that only one A fragment is live (the 128-register cap of two
// CTAs per SM leaves no room for all four).
template <bool kAKMajor, bool kBKMajor>
__device__ __forceinline__ void mma_stage(float (&acc)[4][4][4], std::uint32_t a_tile, std::uint32_t b_tile,
                                          int warp_m, int warp_n, int lane) {
  const int matrix = lane / 8, matrix_row = lane % 8;  // which 8x8 matrix this lane addresses, and its row
#pragma unroll
  for (int ks = 0; ks < kBlockK / 16; ++ks) {
    std::uint32_t b_fragments[4][2];
#pragma unroll
    for (int pair = 0; pair < 2; ++pair) {
      const int n0 = warp_n * kWarpTileN + pair * 16;
      std::uint32_t r[4];
      if constexpr (kBKMajor) {
        // stored [n][k]: matrix 1 is k+8, matrix 2 is n+8
        const int row = n0 + matrix_row + (matrix / 2) * 8, column = ks * 16 + (matrix % 2) * 8;
        ldmatrix_x4(r, b_tile + swizzled_offset(row, column, kBlockN) * 2);
      } else {
        // stored [k][n]: matrix 1 is k+8, matrix 2 is n+8; .trans yields the column-major fragment
        const int row = ks * 16 + matrix_row + (matrix % 2) * 8, column = n0 + (matrix / 2) * 8;
        ldmatrix_x4_trans(r, b_tile + swizzled_offset(row, column, kBlockK) * 2);
      }
      b_fragments[2 * pair][0] = r[0];
      b_fragments[2 * pair][1] = r[1];
      b_fragments[2 * pair + 1][0] = r[2];
      b_fragments[2 * pair + 1][1] = r[3];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m0 = warp_m * kWarpTileM + i * 16;
      std::uint32_t a_fragment[4];
      if constexpr (kAKMajor) {
        // matrices: rows m0+0..7 / m0+8..15 by lane % 16, k halves by lane / 16
        const int row = m0 + lane % 16, column = ks * 16 + (lane / 16) * 8;
        ldmatrix_x4(a_fragment, a_tile + swizzled_offset(row, column, kBlockM) * 2);
      } else {
        // stored [k][m]: matrix 1 is m+8, matrix 2 is k+8; .trans yields the row-major fragment
        const int row = ks * 16 + matrix_row + (matrix / 2) * 8, column = m0 + (matrix % 2) * 8;
        ldmatrix_x4_trans(a_fragment, a_tile + swizzled_offset(row, column, kBlockK) * 2);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) mma_m16n8k16_bf16(acc[i][j], a_fragment, b_fragments[j][0], b_fragments[j][1]);
    }
  }
}

// Shared memory: kStages x (A tile, B tile), then tile_start[G+1] (long long)
// and row_start[G+1] (int). 96 KiB + 12 bytes per group.
template <GroupedKind kKind>
__global__ void __launch_bounds__(kThreads, 2) grouped_gemm_kernel(const GroupedGemmParams p) {
  constexpr bool kKGrouped = kKind == GroupedKind::kKGroupedTN;
  constexpr bool kAKMajor = !kKGrouped;                         // wgrad's dout^T is M-major
  constexpr bool kBKMajor = kKind == GroupedKind::kMGroupedNT;  // w[N,K] read as [K-major N]
  using Output = std::conditional_t<kKGrouped, float, __nv_bfloat16>;

  extern __shared__ __align__(128) unsigned char shared[];
  const std::uint32_t pipeline = static_cast<std::uint32_t>(__cvta_generic_to_shared(shared));
  long long* tile_start = reinterpret_cast<long long*>(shared + kPipelineBytes);
  int* row_start = reinterpret_cast<int*>(tile_start + p.num_groups + 1);

  // Output columns: N (fwd), K (dgrad: da is [M, K]; wgrad: dw[g] is [N, K]).
  const int out_cols = kKind == GroupedKind::kMGroupedNT ? p.n : p.k;
  const int tiles_n = ceil_div(out_cols, kBlockN);
  if (threadIdx.x < 32) grouped_schedule::build_schedule<kKind == GroupedKind::kKGroupedTN, kBlockM>(
        p.group_counts, p.num_groups, p.m_capacity, p.n, tiles_n, tile_start, row_start);
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const long long total_tiles = tile_start[p.num_groups];
  const long long group_weights = static_cast<long long>(p.n) * p.k;
  int g = 0;
  for (long long tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
    while (tile >= tile_start[g + 1]) ++g;
    const int group_begin = row_start[g], group_rows = row_start[g + 1] - row_start[g];
    const int tiles_m = kKGrouped ? ceil_div(p.n, kBlockM) : ceil_div(group_rows, kBlockM);
    const int local = static_cast<int>(tile - tile_start[g]);
    const int m0 = (local % tiles_m) * kBlockM, n0 = (local / tiles_m) * kBlockN;

    OperandTile a, b;
    int reduction;
    Output* out_tile;
    long long out_ld;
    int out_rows_valid;
    if constexpr (kKind == GroupedKind::kMGroupedNT) {
      a = {p.mma_a + (static_cast<long long>(group_begin) + m0) * p.k, p.k, group_rows - m0, p.k};
      b = {p.mma_b + g * group_weights + static_cast<long long>(n0) * p.k, p.k, p.n - n0, p.k};
      reduction = p.k;
      out_ld = p.n;
      out_tile = static_cast<Output*>(p.out) + (static_cast<long long>(group_begin) + m0) * out_ld + n0;
      out_rows_valid = group_rows - m0;
    } else if constexpr (kKind == GroupedKind::kMGroupedNN) {
      a = {p.mma_a + (static_cast<long long>(group_begin) + m0) * p.n, p.n, group_rows - m0, p.n};
      b = {p.mma_b + g * group_weights + n0, p.k, p.k - n0, p.n};  // w[g][kk][n0 + mn]
      reduction = p.n;
      out_ld = p.k;
      out_tile = static_cast<Output*>(p.out) + (static_cast<long long>(group_begin) + m0) * out_ld + n0;
      out_rows_valid = group_rows - m0;
    } else {
      a = {p.mma_a + static_cast<long long>(group_begin) * p.n + m0, p.n, p.n - m0, group_rows};
      b = {p.mma_b + static_cast<long long>(group_begin) * p.k + n0, p.k, p.k - n0, group_rows};
      reduction = group_rows;
      out_ld = p.k;
      out_tile = static_cast<Output*>(p.out) + g * group_weights + static_cast<long long>(m0) * out_ld + n0;
      out_rows_valid = p.n - m0;
    }
    const int out_cols_valid = out_cols - n0;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    const int k_blocks = ceil_div(reduction, kBlockK);
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < k_blocks) {
        load_operand_tile<kAKMajor>(pipeline + s * kStageBytes, a, s * kBlockK);
        load_operand_tile<kBKMajor>(pipeline + s * kStageBytes + kTileBytes, b, s * kBlockK);
      }
      cp_async_commit();
    }
    for (int kb = 0; kb < k_blocks; ++kb) {
      cp_async_wait<kStages - 2>();
      // Also orders the previous step's reads of the stage refilled below.
      __syncthreads();
      const int next = kb + kStages - 1;
      if (next < k_blocks) {
        const std::uint32_t stage = pipeline + (next % kStages) * kStageBytes;
        load_operand_tile<kAKMajor>(stage, a, next * kBlockK);
        load_operand_tile<kBKMajor>(stage + kTileBytes, b, next * kBlockK);
      }
      cp_async_commit();
      const std::uint32_t stage = pipeline + (kb % kStages) * kStageBytes;
      mma_stage<kAKMajor, kBKMajor>(acc, stage, stage + kTileBytes, warp_m, warp_n, lane);
    }
    cp_async_wait<0>();
    __syncthreads();  // the next tile's prologue overwrites stages still being read

    // Accumulator (i, j, e): row warp_m*64 + i*16 + lane/4 (+8 for e >= 2),
    // columns warp_n*32 + j*8 + 2*(lane%4) + {0, 1}.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int column = warp_n * kWarpTileN + j * 8 + (lane % 4) * 2;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = warp_m * kWarpTileM + i * 16 + lane / 4 + half * 8;
          if (row >= out_rows_valid || column >= out_cols_valid) continue;
          Output* target = out_tile + row * out_ld + column;
          if constexpr (kKGrouped) {
            float2 sum = *reinterpret_cast<float2*>(target);
            sum.x += acc[i][j][2 * half];
            sum.y += acc[i][j][2 * half + 1];
            *reinterpret_cast<float2*>(target) = sum;
          } else {
            *reinterpret_cast<__nv_bfloat162*>(target) =
                __floats2bfloat162_rn(acc[i][j][2 * half], acc[i][j][2 * half + 1]);
          }
        }
      }
    }
  }
}

template <GroupedKind kKind>
void launch_grouped_gemm(const GroupedGemmParams& params, cudaStream_t stream) {
  constexpr bool kKGrouped = kKind == GroupedKind::kKGroupedTN;
  const int out_cols = kKind == GroupedKind::kMGroupedNT ? params.n : params.k;
  const long long tiles_n = ceil_div(out_cols, kBlockN);
  // An upper bound of the tiles the device will find: sum ceil(c/128) <= M/128 + G.
  const long long max_tiles =
      kKGrouped ? static_cast<long long>(params.num_groups) * ceil_div(params.n, kBlockM) * tiles_n
                : (ceil_div(params.m_capacity, kBlockM) + static_cast<long long>(params.num_groups)) * tiles_n;
  if (params.m_capacity == 0 || max_tiles == 0) return;

  const auto kernel = grouped_gemm_kernel<kKind>;
  const int shared_bytes = kPipelineBytes + (params.num_groups + 1) * kScheduleBytesPerGroup;
  int device = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  {
    // Raise the kernel's dynamic shared-memory limit once per device.
    static std::mutex mutex;
    static std::vector<bool> configured;
    std::lock_guard<std::mutex> lock(mutex);
    if (configured.size() <= static_cast<size_t>(device)) configured.resize(device + 1, false);
    if (!configured[device]) {
      constexpr int kMaxSharedBytes = kPipelineBytes + (kMaxGroupedGemmGroups + 1) * kScheduleBytesPerGroup;
      MOEBENCH_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSharedBytes));
      configured[device] = true;
    }
  }
  int multiprocessors = 0, blocks_per_multiprocessor = 0;
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
  MOEBENCH_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_multiprocessor, kernel, kThreads, shared_bytes));
  const long long resident = static_cast<long long>(multiprocessors) * std::max(blocks_per_multiprocessor, 1);
  const int grid = static_cast<int>(std::min(resident, max_tiles));
  kernel<<<grid, kThreads, shared_bytes, stream>>>(params);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

// Row offsets and clamped row counts of each group, from counts copied to the
// host (the reference path's one synchronisation).
struct HostGroups {
  std::vector<std::int64_t> begin, rows;
};

HostGroups copy_groups_to_host(const std::int32_t* group_counts, std::int64_t num_groups, std::int64_t m_capacity,
                               cudaStream_t stream) {
  if (num_groups < 1) throw Error("grouped gemm: num_groups=" + std::to_string(num_groups) + " must be >= 1");
  if (group_counts == nullptr) throw Error("grouped gemm: group_counts is null");
  std::vector<std::int32_t> counts(num_groups);
  MOEBENCH_CUDA_CHECK(cudaMemcpyAsync(counts.data(), group_counts, num_groups * sizeof(std::int32_t),
                                      cudaMemcpyDeviceToHost, stream));
  MOEBENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  HostGroups groups;
  std::int64_t offset = 0;
  for (std::int32_t count : counts) {
    const std::int64_t begin = std::min(offset, m_capacity);
    offset += std::max(count, 0);
    groups.begin.push_back(begin);
    groups.rows.push_back(std::min(offset, m_capacity) - begin);
  }
  return groups;
}

}  // namespace

void m_grouped_bf16_gemm_nt_contiguous(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* w,
                                       const std::int32_t* group_counts, std::int64_t num_groups,
                                       std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                       cudaStream_t stream) {
  check_grouped_gemm_arguments("m_grouped_bf16_gemm_nt_contiguous", out, a, w, group_counts, num_groups, m_capacity,
                               n, k);
  launch_grouped_gemm<GroupedKind::kMGroupedNT>(
      {out, a, w, group_counts, static_cast<int>(num_groups), static_cast<int>(m_capacity), static_cast<int>(n),
       static_cast<int>(k)},
      stream);
}

void m_grouped_bf16_gemm_nn_contiguous(__nv_bfloat16* da, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                       const std::int32_t* group_counts, std::int64_t num_groups,
                                       std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                       cudaStream_t stream) {
  check_grouped_gemm_arguments("m_grouped_bf16_gemm_nn_contiguous", da, dout, w, group_counts, num_groups,
                               m_capacity, n, k);
  launch_grouped_gemm<GroupedKind::kMGroupedNN>(
      {da, dout, w, group_counts, static_cast<int>(num_groups), static_cast<int>(m_capacity), static_cast<int>(n),
       static_cast<int>(k)},
      stream);
}

void k_grouped_bf16_gemm_tn_contiguous(float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                                       const std::int32_t* group_counts, std::int64_t num_groups,
                                       std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                       cudaStream_t stream) {
  check_grouped_gemm_arguments("k_grouped_bf16_gemm_tn_contiguous", dw, dout, a, group_counts, num_groups,
                               m_capacity, n, k);
  launch_grouped_gemm<GroupedKind::kKGroupedTN>(
      {dw, dout, a, group_counts, static_cast<int>(num_groups), static_cast<int>(m_capacity), static_cast<int>(n),
       static_cast<int>(k)},
      stream);
}

void m_grouped_bf16_gemm_nt_contiguous_cublaslt_loop(GemmContext& context, __nv_bfloat16* out,
                                                     const __nv_bfloat16* a, const __nv_bfloat16* w,
                                                     const std::int32_t* group_counts, std::int64_t num_groups,
                                                     std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                                     cudaStream_t stream) {
  const HostGroups groups = copy_groups_to_host(group_counts, num_groups, m_capacity, stream);
  for (std::int64_t g = 0; g < num_groups; ++g) {
    if (groups.rows[g] == 0) continue;
    gemm(context, out + groups.begin[g] * n, a + groups.begin[g] * k, w + g * n * k, nullptr, groups.rows[g], n, k,
         GemmLayout::kNT, stream);
  }
}

void m_grouped_bf16_gemm_nn_contiguous_cublaslt_loop(GemmContext& context, __nv_bfloat16* da,
                                                     const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                                     const std::int32_t* group_counts, std::int64_t num_groups,
                                                     std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                                     cudaStream_t stream) {
  const HostGroups groups = copy_groups_to_host(group_counts, num_groups, m_capacity, stream);
  for (std::int64_t g = 0; g < num_groups; ++g) {
    if (groups.rows[g] == 0) continue;
    gemm(context, da + groups.begin[g] * k, dout + groups.begin[g] * n, w + g * n * k, nullptr, groups.rows[g], k,
         n, GemmLayout::kNN, stream);
  }
}

void k_grouped_bf16_gemm_tn_contiguous_cublaslt_loop(GemmContext& context, float* dw, const __nv_bfloat16* dout,
                                                     const __nv_bfloat16* a, const std::int32_t* group_counts,
                                                     std::int64_t num_groups, std::int64_t m_capacity,
                                                     std::int64_t n, std::int64_t k, cudaStream_t stream) {
  const HostGroups groups = copy_groups_to_host(group_counts, num_groups, m_capacity, stream);
  for (std::int64_t g = 0; g < num_groups; ++g) {
    if (groups.rows[g] == 0) continue;
    gemm(context, dw + g * n * k, dout + groups.begin[g] * n, a + groups.begin[g] * k, n, k, groups.rows[g],
         GemmLayout::kTN, GemmOutput::kAccumulate, stream);
  }
}

}  // namespace moebench::ops::cuda
