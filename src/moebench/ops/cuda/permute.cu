// MoE token permutation on the GPU (see ops/permute.h), all on the device:
//   sort        routing_map[tokens, topk] int64 -> row_id_map[tokens*topk],
//               row_of_slot[tokens*topk], tokens_per_expert[E] (int64)
//   permute     forward  permuted[row] = input[token]                 (bf16 copy)
//               backward dinput[token] = sum of its rows              (fp32 sum, bf16 out)
//   unpermute   forward  out[token] = sum of probs * its rows         (fp32 sum, bf16 out)
//               backward dexpert_out[row] = prob * dout[token] (bf16),
//                        dprobs[slot] = dout[token] . expert_out[row] (fp32)
// Kernels (version 1 of each):
//   sort_slots_kernel        one block of 32 warps, a counting sort in three steps:
//                            each warp counts its contiguous tile of slots per expert
//                            (__match_any_sync groups equal experts, one shared-memory
//                            add per group); a scan over (expert, warp) gives every
//                            warp its first row per expert; each warp walks its tile
//                            again placing slot after slot, a lane's rank being the
//                            number of lower lanes with the same expert. Tiles in warp
//                            order and lanes in slot order make the sort stable.
//   permute_forward_kernel   one block per token: each 16-byte pack of the token's row
//                            is read once and written to each of its k rows.
//   gather_rows_kernel       one block per token: fp32 sum of its k rows (weighted by
//                            probs for unpermute), one bf16 pack store; no atomics.
//   unpermute_backward_kernel one block per token: scaled copies of dout to the k rows
//                            and a block-reduced dot product per slot.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/permute.cu
// Check and time: tests/gpu/permute_test.cpp (PermuteTiming.* prints microseconds and GB/s).
#include <climits>
#include <initializer_list>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/cuda/block_reduce.cuh"
#include "moebench/ops/permute.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kSortWarps = 32;
constexpr int kSortThreads = kSortWarps * kWarpSize;
constexpr int kMaxSortExperts = kSortThreads;  // the expert scan gives each thread one expert
constexpr int kChunksInFlight = 8;             // 32-slot chunks a warp loads before using them
constexpr int kMaxTopk = 32;
constexpr int kRowThreads = 128;
constexpr int kDefaultSharedBytes = 48 * 1024;

// The expert of `slot`, or -1 when dropped or past the end; traps on an entry
// that names no expert, since the sort cannot place it.
__device__ inline int expert_of_slot(const std::int64_t* routing_map, std::int64_t slot,
                                     std::int64_t slots, int experts) {
  if (slot >= slots) return -1;
  const std::int64_t expert = routing_map[slot];
  if (expert < -1 || expert >= experts) __trap();
  return int(expert);
}

// Exclusive prefix sum of one value per thread over the block (1024 threads).
__device__ inline int block_exclusive_scan(int value, int* warp_totals) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  int inclusive = value;
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const int lower = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += lower;
  }
  if (lane == kWarpSize - 1) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int total = warp_totals[lane];
#pragma unroll
    for (int offset = 1; offset < kWarpSize; offset *= 2) {
      const int lower = __shfl_up_sync(kFullMask, total, offset);
      if (lane >= offset) total += lower;
    }
    warp_totals[lane] = total - warp_totals[lane];  // exclusive, per warp
  }
  __syncthreads();
  return warp_totals[warp] + inclusive - value;
}

__global__ void __launch_bounds__(kSortThreads)
    sort_slots_kernel(std::int64_t* __restrict__ row_id_map, std::int64_t* __restrict__ row_of_slot,
                      std::int64_t* __restrict__ tokens_per_expert,
                      const std::int64_t* __restrict__ routing_map, std::int64_t slots, int experts) {
  extern __shared__ int next_row[];  // [kSortWarps][experts]: counts, then first free rows
  __shared__ int warp_totals[kWarpSize];
  __shared__ int total_rows;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const unsigned lower_lanes = (1u << lane) - 1;
  const std::int64_t tile = (slots + kSortWarps - 1) / kSortWarps;
  const std::int64_t tile_begin = warp * tile;
  const std::int64_t tile_end = min(slots, tile_begin + tile);
  int* warp_rows = next_row + warp * experts;

  for (int i = threadIdx.x; i < kSortWarps * experts; i += blockDim.x) next_row[i] = 0;
  __syncthreads();

  // 1. Per-warp counts.
  for (std::int64_t base = tile_begin; base < tile_end; base += kChunksInFlight * kWarpSize) {
    int expert[kChunksInFlight];
#pragma unroll
    for (int c = 0; c < kChunksInFlight; ++c)
      expert[c] = expert_of_slot(routing_map, base + c * kWarpSize + lane, tile_end, experts);
#pragma unroll
    for (int c = 0; c < kChunksInFlight; ++c) {
      const unsigned peers = __match_any_sync(kFullMask, expert[c]);
      if (expert[c] >= 0 && (peers & lower_lanes) == 0) warp_rows[expert[c]] += __popc(peers);
      __syncwarp();
    }
  }
  __syncthreads();

  // 2. Scan over (expert, warp): expert e's rows start after all lower experts'.
  const int e = threadIdx.x;
  int expert_total = 0;
  if (e < experts)
    for (int w = 0; w < kSortWarps; ++w) expert_total += next_row[w * experts + e];
  const int expert_start = block_exclusive_scan(expert_total, warp_totals);
  if (e < experts) {
    tokens_per_expert[e] = expert_total;
    int row = expert_start;
    for (int w = 0; w < kSortWarps; ++w) {
      const int count = next_row[w * experts + e];
      next_row[w * experts + e] = row;
      row += count;
    }
    if (e == experts - 1) total_rows = row;
  }
  __syncthreads();

  // 3. Stable placement: lower warps, then lower lanes, take the lower rows.
  for (std::int64_t base = tile_begin; base < tile_end; base += kChunksInFlight * kWarpSize) {
    int expert[kChunksInFlight];
#pragma unroll
    for (int c = 0; c < kChunksInFlight; ++c)
      expert[c] = expert_of_slot(routing_map, base + c * kWarpSize + lane, tile_end, experts);
#pragma unroll
    for (int c = 0; c < kChunksInFlight; ++c) {
      const std::int64_t slot = base + c * kWarpSize + lane;
      const unsigned peers = __match_any_sync(kFullMask, expert[c]);
      if (expert[c] >= 0) {
        const int row = warp_rows[expert[c]] + __popc(peers & lower_lanes);
        row_id_map[row] = slot;
        row_of_slot[slot] = row;
      } else if (slot < tile_end) {
        row_of_slot[slot] = -1;
      }
      __syncwarp();  // every peer has read warp_rows before the first peer moves it on
      if (expert[c] >= 0 && (peers & lower_lanes) == 0) warp_rows[expert[c]] += __popc(peers);
      __syncwarp();
    }
  }
  for (std::int64_t row = total_rows + threadIdx.x; row < slots; row += blockDim.x) row_id_map[row] = -1;
}

// Each thread owns packs threadIdx.x, +blockDim.x, ... of the token's row.
__global__ void __launch_bounds__(kRowThreads)
    permute_forward_kernel(__nv_bfloat16* __restrict__ permuted, const __nv_bfloat16* __restrict__ input,
                           const std::int64_t* __restrict__ row_of_slot, int topk, std::int64_t hidden) {
  __shared__ std::int64_t rows[kMaxTopk];
  const std::int64_t token = blockIdx.x;
  if (threadIdx.x < topk) rows[threadIdx.x] = row_of_slot[token * topk + threadIdx.x];
  __syncthreads();
  for (std::int64_t column = std::int64_t(threadIdx.x) * kPackSize; column < hidden;
       column += std::int64_t(blockDim.x) * kPackSize) {
    const uint4 pack = load_raw_pack(input + token * hidden + column);
    for (int j = 0; j < topk; ++j)
      if (rows[j] >= 0) *reinterpret_cast<uint4*>(permuted + rows[j] * hidden + column) = pack;
  }
}

// out[token] = residual[token] + sum over kept slots j of weight_j *
// rows_in[row_j]; weight 1 without probs, no residual when it is null.
__global__ void __launch_bounds__(kRowThreads)
    gather_rows_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ rows_in,
                       const float* __restrict__ probs, const std::int64_t* __restrict__ row_of_slot,
                       const __nv_bfloat16* __restrict__ residual, int topk, std::int64_t hidden) {
  __shared__ std::int64_t rows[kMaxTopk];
  __shared__ float weights[kMaxTopk];
  const std::int64_t token = blockIdx.x;
  if (threadIdx.x < topk) {
    rows[threadIdx.x] = row_of_slot[token * topk + threadIdx.x];
    weights[threadIdx.x] = probs != nullptr ? probs[token * topk + threadIdx.x] : 1.0f;
  }
  __syncthreads();
  for (std::int64_t column = std::int64_t(threadIdx.x) * kPackSize; column < hidden;
       column += std::int64_t(blockDim.x) * kPackSize) {
    float sum[kPackSize] = {};
    if (residual != nullptr) load_pack(sum, residual + token * hidden + column);
    for (int j = 0; j < topk; ++j) {
      if (rows[j] < 0) continue;
      float x[kPackSize];
      load_pack(x, rows_in + rows[j] * hidden + column);
#pragma unroll
      for (int i = 0; i < kPackSize; ++i) sum[i] += weights[j] * x[i];
    }
    store_pack(out + token * hidden + column, sum);
  }
}

__global__ void __launch_bounds__(kRowThreads)
    unpermute_backward_kernel(__nv_bfloat16* __restrict__ dexpert_out, float* __restrict__ dprobs,
                              const __nv_bfloat16* __restrict__ dout,
                              const __nv_bfloat16* __restrict__ expert_out,
                              const float* __restrict__ probs,
                              const std::int64_t* __restrict__ row_of_slot, int topk,
                              std::int64_t hidden) {
  const std::int64_t token = blockIdx.x;
  const __nv_bfloat16* dout_row = dout + token * hidden;
  for (int j = 0; j < topk; ++j) {
    const std::int64_t slot = token * topk + j;
    const std::int64_t row = row_of_slot[slot];  // the same for the whole block
    if (row < 0) {
      if (threadIdx.x == 0) dprobs[slot] = 0.0f;
      continue;
    }
    const float prob = probs[slot];
    float dot = 0.0f;
    for (std::int64_t column = std::int64_t(threadIdx.x) * kPackSize; column < hidden;
         column += std::int64_t(blockDim.x) * kPackSize) {
      float g[kPackSize], x[kPackSize], scaled[kPackSize];
      load_pack(g, dout_row + column);
      load_pack(x, expert_out + row * hidden + column);
#pragma unroll
      for (int i = 0; i < kPackSize; ++i) {
        scaled[i] = prob * g[i];
        dot += g[i] * x[i];
      }
      store_pack(dexpert_out + row * hidden + column, scaled);
    }
    dot = block_sum(dot);
    if (threadIdx.x == 0) dprobs[slot] = dot;
  }
}

void check_rows(const char* op, std::int64_t tokens, std::int64_t topk, std::int64_t hidden,
                std::initializer_list<const void*> row_pointers) {
  const std::string name(op);
  if (tokens < 0 || topk <= 0 || topk > kMaxTopk || hidden < 0 || hidden % kPackSize != 0)
    throw Error(name + ": tokens " + std::to_string(tokens) + " must be >= 0, topk " +
                std::to_string(topk) + " in [1, " + std::to_string(kMaxTopk) + "] and hidden " +
                std::to_string(hidden) + " a multiple of " + std::to_string(kPackSize));
  if (tokens > INT_MAX)
    throw Error(name + ": tokens " + std::to_string(tokens) + " exceed one grid row of blocks");
  for (const void* pointer : row_pointers)
    if (!is_pack_aligned(pointer))
      throw Error(name + ": a row pointer is not 16-byte aligned; allocate rows with cudaMalloc");
}

}  // namespace

void sort_slots_by_expert(std::int64_t* row_id_map, std::int64_t* row_of_slot,
                          std::int64_t* tokens_per_expert, const std::int64_t* routing_map,
                          std::int64_t tokens, std::int64_t topk, std::int64_t num_experts,
                          cudaStream_t stream) {
  if (tokens < 0 || topk <= 0 || num_experts <= 0 || num_experts > kMaxSortExperts)
    throw Error("cuda::sort_slots_by_expert: tokens " + std::to_string(tokens) + " must be >= 0, topk " +
                std::to_string(topk) + " > 0 and num_experts " + std::to_string(num_experts) +
                " in [1, " + std::to_string(kMaxSortExperts) + "]");
  if (tokens * topk > INT_MAX)
    throw Error("cuda::sort_slots_by_expert: tokens * topk = " + std::to_string(tokens * topk) +
                " slots exceed the int row numbers of the sort");
  const std::size_t shared_bytes = std::size_t(kSortWarps) * num_experts * sizeof(int);
  if (shared_bytes > kDefaultSharedBytes)
    MOEBENCH_CUDA_CHECK(cudaFuncSetAttribute(sort_slots_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(shared_bytes)));
  sort_slots_kernel<<<1, kSortThreads, shared_bytes, stream>>>(row_id_map, row_of_slot, tokens_per_expert,
                                                                routing_map, tokens * topk, int(num_experts));
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void permute_forward(__nv_bfloat16* permuted, const __nv_bfloat16* input,
                     const std::int64_t* row_of_slot, std::int64_t tokens, std::int64_t topk,
                     std::int64_t hidden, cudaStream_t stream) {
  check_rows("cuda::permute_forward", tokens, topk, hidden, {permuted, input});
  if (tokens == 0 || hidden == 0) return;
  permute_forward_kernel<<<unsigned(tokens), kRowThreads, 0, stream>>>(permuted, input, row_of_slot, int(topk),
                                                                        hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void permute_backward(__nv_bfloat16* dinput, const __nv_bfloat16* dpermuted,
                      const std::int64_t* row_of_slot, std::int64_t tokens, std::int64_t topk,
                      std::int64_t hidden, cudaStream_t stream) {
  check_rows("cuda::permute_backward", tokens, topk, hidden, {dinput, dpermuted});
  if (tokens == 0 || hidden == 0) return;
  gather_rows_kernel<<<unsigned(tokens), kRowThreads, 0, stream>>>(dinput, dpermuted, nullptr, row_of_slot, nullptr,
                                                                    int(topk), hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void unpermute_forward(__nv_bfloat16* out, const __nv_bfloat16* expert_out, const float* probs,
                       const std::int64_t* row_of_slot, const __nv_bfloat16* residual, std::int64_t tokens,
                       std::int64_t topk, std::int64_t hidden, cudaStream_t stream) {
  check_rows("cuda::unpermute_forward", tokens, topk, hidden, {out, expert_out, residual ? residual : out});
  if (tokens == 0 || hidden == 0) return;
  gather_rows_kernel<<<unsigned(tokens), kRowThreads, 0, stream>>>(out, expert_out, probs, row_of_slot, residual,
                                                                    int(topk), hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void unpermute_backward(__nv_bfloat16* dexpert_out, float* dprobs, const __nv_bfloat16* dout,
                        const __nv_bfloat16* expert_out, const float* probs,
                        const std::int64_t* row_of_slot, std::int64_t tokens, std::int64_t topk,
                        std::int64_t hidden, cudaStream_t stream) {
  check_rows("cuda::unpermute_backward", tokens, topk, hidden, {dexpert_out, dout, expert_out});
  if (tokens == 0) return;
  unpermute_backward_kernel<<<unsigned(tokens), kRowThreads, 0, stream>>>(dexpert_out, dprobs, dout, expert_out,
                                                                           probs, row_of_slot, int(topk), hidden);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
