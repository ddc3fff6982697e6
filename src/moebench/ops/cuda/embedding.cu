// Token embedding on the GPU (see ops/embedding.h): bf16 table and output,
// fp32 table gradient.
//   forward   out[i, :] = table[ids[i], :]
//   backward  dtable[v, :] += sum of dout[i, :] over the tokens i with ids[i] == v
// The backward is deterministic: a stable radix sort (cub) orders the token
// positions by id, so equal ids form runs in token order, and one warp sums a
// run in that order for 256 columns (8 bf16 per lane) and adds the result to
// dtable once. Vocabulary rows are never shared between warps, so no atomics.
// A run is as long as the id's count: a token repeated across a whole batch
// (padding) is summed by few warps, slower but still exact.
// Kernels (version 1):
//   embedding_forward_kernel      one warp per token copies its row with 16-byte packs
//                                 (C % 8 == 0, aligned) or element by element.
//   embedding_sort_keys_kernel    int32 keys (id, or V for an invalid id) and positions 0..N-1.
//   embedding_backward_kernel     grid (N sorted positions, column tiles); only the
//                                 first position of each run works.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -DMOEBENCH_WITH_CUDA=1 -c src/moebench/ops/cuda/embedding.cu
// Check and time: tests/gpu/embedding_test.cpp (EmbeddingTiming.* prints TB/s).
#include <cub/device/device_radix_sort.cuh>

#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/embedding.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;
constexpr size_t kScratchAlignment = 256;

template <int V>
__global__ void embedding_forward_kernel(__nv_bfloat16* __restrict__ out, const int64_t* __restrict__ ids,
                                         const __nv_bfloat16* __restrict__ table, int64_t n, int64_t vocab,
                                         int64_t c) {
  const int64_t token = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (token >= n) return;
  const int lane = threadIdx.x % kWarp;
  const int64_t id = ids[token];
  const bool valid = id >= 0 && id < vocab;
  for (int64_t j = int64_t(lane) * V; j < c; j += int64_t(kWarp) * V) {
    float row[V];
    if (valid) {
      load_bf16<V>(row, table + id * c + j);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) row[k] = NAN;
    }
    store_bf16<V>(out + token * c + j, row);
  }
}

__global__ void embedding_sort_keys_kernel(int32_t* __restrict__ keys, int32_t* __restrict__ positions,
                                           const int64_t* __restrict__ ids, int64_t n, int64_t vocab) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t id = ids[i];
  keys[i] = id >= 0 && id < vocab ? int32_t(id) : int32_t(vocab);
  positions[i] = int32_t(i);
}

// blockIdx.x: a sorted position; blockIdx.y: a tile of 32 * V columns; one warp per block.
template <int V>
__global__ void embedding_backward_kernel(float* __restrict__ dtable, const __nv_bfloat16* __restrict__ dout,
                                          const int32_t* __restrict__ sorted_ids,
                                          const int32_t* __restrict__ sorted_positions, int64_t n, int64_t vocab,
                                          int64_t c) {
  const int64_t start = blockIdx.x;
  const int32_t id = sorted_ids[start];
  if (id >= vocab || (start > 0 && sorted_ids[start - 1] == id)) return;  // invalid, or not a run's first
  const int64_t j = (int64_t(blockIdx.y) * kWarp + threadIdx.x) * V;
  if (j >= c) return;
  float sum[V] = {};
  for (int64_t i = start; i < n && sorted_ids[i] == id; ++i) {
    float dy[V];
    load_bf16<V>(dy, dout + int64_t(sorted_positions[i]) * c + j);
#pragma unroll
    for (int k = 0; k < V; ++k) sum[k] += dy[k];
  }
  float* drow = dtable + int64_t(id) * c + j;
#pragma unroll
  for (int k = 0; k < V; ++k) drow[k] += sum[k];
}

size_t align_up(size_t bytes) { return (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment; }

// Key bits the sort must look at: enough for ids 0..V (V marks an invalid id).
int key_bits(int64_t vocab) {
  int bits = 1;
  while ((int64_t(1) << bits) <= vocab) ++bits;
  return bits;
}

size_t cub_temp_bytes(int64_t n, int64_t vocab) {
  size_t bytes = 0;
  MOEBENCH_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                                      static_cast<int32_t*>(nullptr),
                                                      static_cast<const int32_t*>(nullptr),
                                                      static_cast<int32_t*>(nullptr), int(n), 0, key_bits(vocab)));
  return bytes;
}

void check_sizes(const char* op, int64_t n, int64_t vocab, int64_t c) {
  if (n < 0 || n > INT32_MAX - 1 || vocab < 1 || vocab >= INT32_MAX || c < 1)
    throw Error(std::string(op) + ": tokens " + std::to_string(n) + " and vocabulary " + std::to_string(vocab) +
                " must be in [0, 2^31 - 1) and [1, 2^31 - 1), width " + std::to_string(c) + " at least 1");
}

}  // namespace

void embedding_forward(__nv_bfloat16* out, const std::int64_t* ids, const __nv_bfloat16* table, std::int64_t n,
                       std::int64_t vocab, std::int64_t c, cudaStream_t stream) {
  check_sizes("embedding_forward", n, vocab, c);
  if (n == 0) return;
  const unsigned blocks = unsigned((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (c % kPackSize == 0 && is_pack_aligned(out) && is_pack_aligned(table)) {
    embedding_forward_kernel<kPackSize><<<blocks, kWarp * kWarpsPerBlock, 0, stream>>>(out, ids, table, n, vocab, c);
  } else {
    embedding_forward_kernel<1><<<blocks, kWarp * kWarpsPerBlock, 0, stream>>>(out, ids, table, n, vocab, c);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

std::size_t embedding_backward_scratch_bytes(std::int64_t n, std::int64_t vocab) {
  check_sizes("embedding_backward_scratch_bytes", n, vocab, 1);
  return 4 * align_up(size_t(n) * sizeof(int32_t)) + align_up(cub_temp_bytes(n, vocab));
}

void embedding_backward(float* dtable, const __nv_bfloat16* dout, const std::int64_t* ids, std::int64_t n,
                        std::int64_t vocab, std::int64_t c, void* scratch, cudaStream_t stream) {
  check_sizes("embedding_backward", n, vocab, c);
  if (n == 0) return;
  if (reinterpret_cast<uintptr_t>(scratch) % kScratchAlignment != 0)
    throw Error("embedding_backward: scratch must be 256-byte aligned (cudaMalloc and the caching allocator are)");
  // Scratch: keys, sorted keys, positions, sorted positions, then cub's temporary storage.
  char* base = static_cast<char*>(scratch);
  const size_t array_bytes = align_up(size_t(n) * sizeof(int32_t));
  auto* keys = reinterpret_cast<int32_t*>(base);
  auto* sorted_keys = reinterpret_cast<int32_t*>(base + array_bytes);
  auto* positions = reinterpret_cast<int32_t*>(base + 2 * array_bytes);
  auto* sorted_positions = reinterpret_cast<int32_t*>(base + 3 * array_bytes);
  void* cub_temp = base + 4 * array_bytes;
  size_t cub_bytes = cub_temp_bytes(n, vocab);

  constexpr int kKeyThreads = 256;
  embedding_sort_keys_kernel<<<unsigned((n + kKeyThreads - 1) / kKeyThreads), kKeyThreads, 0, stream>>>(
      keys, positions, ids, n, vocab);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
  MOEBENCH_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(cub_temp, cub_bytes, keys, sorted_keys, positions,
                                                      sorted_positions, int(n), 0, key_bits(vocab), stream));
  const bool packed = c % kPackSize == 0 && is_pack_aligned(dout) && is_pack_aligned(dtable);
  const int v = packed ? kPackSize : 1;
  const int64_t tiles = (c + int64_t(kWarp) * v - 1) / (int64_t(kWarp) * v);
  if (tiles > 65535)
    throw Error("embedding_backward: width " + std::to_string(c) + " needs " + std::to_string(tiles) +
                " column tiles; at most 65535 fit the grid");
  const dim3 grid{unsigned(n), unsigned(tiles)};
  if (packed) {
    embedding_backward_kernel<kPackSize><<<grid, kWarp, 0, stream>>>(dtable, dout, sorted_keys, sorted_positions, n,
                                                                     vocab, c);
  } else {
    embedding_backward_kernel<1><<<grid, kWarp, 0, stream>>>(dtable, dout, sorted_keys, sorted_positions, n, vocab, c);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
