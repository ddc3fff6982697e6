// RMSNorm on the GPU, bf16 activations with fp32 math (see ops/rmsnorm.h):
//   forward   out[N,C] = inp * rstd * weight, rstd[N] = 1 / sqrt(mean(inp^2) + eps)
//   backward  dinp[N,C] = rstd * (g - xhat * mean(g * xhat)) [+ residual_grad],
//             g = dout * weight, xhat = inp * rstd;  dweight[C] += sum over rows of dout * xhat
// The optional residual_grad is the gradient of a residual branch that meets
// the norm's input: adding it while dinp is written saves the separate add
// kernel (a read and a write of [N,C]); the sum is rounded to bf16 once.
// Kernels:
//   rmsnorm_forward_kernel (version 1)  one block per row; each thread owns the
//       columns of its 16-byte packs, sums squares, block-reduces, then rereads
//       the row (L1) to write.
//   rmsnorm_backward_packed_kernel (version 2)  rows whose width is a multiple
//       of 8, at most kMaxPackedWidth (16384), with 16-byte aligned pointers.
//       A group of threads per row (a power of two up to 32 lanes for narrow
//       rows, else whole warps; several groups share a 256-thread block), each
//       thread owning the same kRowPacks 8-wide column packs of every row it
//       visits, moved as single 16-byte accesses. The row's x, dy and
//       residual_grad stay in registers from the load through the reduction to
//       the write, and the dweight partial of the thread's columns stays in
//       registers across the rows its group walks; the groups' partials are
//       summed in group order at the end and stored to scratch[block, C].
//       Why: version 1 kept the partial in shared memory (a read-modify-write
//       per element) and read every row twice, reaching 1.8 TB/s at 4096 x 4096
//       on an H100 against a copy ceiling near 3 TB/s.
//   rmsnorm_backward_kernel (version 1)  every other width or alignment (and
//       the widest rows), element by element: a grid of up to 512 blocks walking
//       rows blockIdx.x, +gridDim.x, ...; the dweight partial in shared memory
//       (C floats, each column owned by one thread: no atomics), stored to
//       scratch[block, C]. Its 16-byte pack variant gave way to version 2.
//   rmsnorm_dweight_reduce_kernel (version 2)  dweight[j] += sum of the
//       partials in a fixed order (runs of consecutive blocks, each in block
//       order, then the runs in order), so the result does not depend on
//       scheduling. Version 1 had one thread per column walk every partial in
//       block order: C / 256 blocks, too few warps to read the partials fast.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/rmsnorm.cu
// Check and time: tests/gpu/rmsnorm_test.cpp (RmsnormTiming.* prints GB/s).
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/cuda/block_reduce.cuh"
#include "moebench/ops/rmsnorm.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kMaxPartialBlocks = 512;
constexpr int kMaxThreads = 1024;
constexpr int kBackwardThreads = 256;
constexpr int kReduceSlices = 8;  // warps per block of rmsnorm_dweight_reduce_kernel
// Packed backward: packs per thread (its registers hold x, dy, residual_grad
// and weight as loaded and the fp32 dweight partial of 4 x 8 columns: 128
// registers, no spills, two 256-thread blocks per SM) and the block size it
// aims at (narrow rows share a block); a row takes at most kMaxPackedThreads
// threads, which bounds its width.
constexpr int kRowPacks = 4;
constexpr int kPackedBlockThreads = 256;
constexpr int kMaxPackedThreads = 512;
constexpr int64_t kMaxPackedWidth = int64_t(kRowPacks) * kPackSize * kMaxPackedThreads;

template <int V>
__global__ void rmsnorm_forward_kernel(__nv_bfloat16* __restrict__ out, float* __restrict__ rstd,
                                       const __nv_bfloat16* __restrict__ inp,
                                       const __nv_bfloat16* __restrict__ weight, int64_t c, float eps) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* x_row = inp + row * c;
  __nv_bfloat16* y_row = out + row * c;
  float sum_squares = 0.0f;
  for (int64_t j = int64_t(threadIdx.x) * V; j < c; j += int64_t(blockDim.x) * V) {
    float x[V];
    load_bf16<V>(x, x_row + j);
#pragma unroll
    for (int k = 0; k < V; ++k) sum_squares += x[k] * x[k];
  }
  const float r = 1.0f / sqrtf(block_sum(sum_squares) / float(c) + eps);
  for (int64_t j = int64_t(threadIdx.x) * V; j < c; j += int64_t(blockDim.x) * V) {
    float x[V], w[V], y[V];
    load_bf16<V>(x, x_row + j);
    load_bf16<V>(w, weight + j);
#pragma unroll
    for (int k = 0; k < V; ++k) y[k] = x[k] * r * w[k];
    store_bf16<V>(y_row + j, y);
  }
  if (threadIdx.x == 0) rstd[row] = r;
}

// Sum over the `group` threads of a row (consecutive threads, group a power of
// two up to 32 or a multiple of 32 dividing blockDim.x), returned to each of
// them; a fixed order, and every thread of the block must call it.
__device__ inline float row_group_sum(float value, int group) {
  if (group <= 32) {
    for (int offset = group / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
  }
  __shared__ float warp_sums[kMaxThreads / 32];
  value = warp_sum(value);
  const int warp = threadIdx.x / 32, warps_per_group = group / 32;
  __syncthreads();  // the previous row's sums have been read
  if (threadIdx.x % 32 == 0) warp_sums[warp] = value;
  __syncthreads();
  const int first = warp / warps_per_group * warps_per_group;
  float total = 0.0f;
  for (int w = 0; w < warps_per_group; ++w) total += warp_sums[first + w];
  return total;
}

// Thread t of a group owns packs t, t + group, ..., so a warp's loads are contiguous.
__global__ void __launch_bounds__(kMaxPackedThreads)
    rmsnorm_backward_packed_kernel(__nv_bfloat16* __restrict__ dinp, float* __restrict__ partials,
                                   const __nv_bfloat16* __restrict__ dout, const __nv_bfloat16* __restrict__ inp,
                                   const __nv_bfloat16* __restrict__ weight,
                                   const __nv_bfloat16* __restrict__ residual_grad, const float* __restrict__ rstd,
                                   int64_t n, int c, int group) {
  const int rows_per_block = blockDim.x / group;
  const int row_in_block = threadIdx.x / group;
  const int first_column = threadIdx.x % group * kPackSize;
  const int column_step = group * kPackSize;
  float dweight[kRowPacks][kPackSize];
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
#pragma unroll
    for (int e = 0; e < kPackSize; ++e) dweight[k][e] = 0.0f;
  }
  const int64_t row_step = int64_t(gridDim.x) * rows_per_block;
  // The bound is the same for the whole block: a group past the last row
  // still joins row_group_sum's barriers.
  for (int64_t first_row = int64_t(blockIdx.x) * rows_per_block; first_row < n; first_row += row_step) {
    const int64_t row = first_row + row_in_block;
    const bool active = row < n;
    const int64_t offset = row * c;
    const float r = active ? rstd[row] : 0.0f;
    // weight is reread with every row (from L1): held across rows it would
    // cost 32 registers more than the kernel can spare.
    uint4 x[kRowPacks], dy[kRowPacks], w[kRowPacks], residual[kRowPacks];
    float sum_g_x = 0.0f;
#pragma unroll
    for (int k = 0; k < kRowPacks; ++k) {
      const int j = first_column + k * column_step;
      if (!active || j >= c) continue;
      x[k] = load_raw_pack(inp + offset + j);
      dy[k] = load_raw_pack(dout + offset + j);
      w[k] = load_raw_pack(weight + j);
      if (residual_grad != nullptr) residual[k] = load_raw_pack(residual_grad + offset + j);
    }
#pragma unroll
    for (int k = 0; k < kRowPacks; ++k) {
      const int j = first_column + k * column_step;
      if (!active || j >= c) continue;
      float xf[kPackSize], dyf[kPackSize], wf[kPackSize];
      unpack(xf, x[k]);
      unpack(dyf, dy[k]);
      unpack(wf, w[k]);
#pragma unroll
      for (int e = 0; e < kPackSize; ++e) sum_g_x += dyf[e] * wf[e] * xf[e];
    }
    const float mean_g_xhat = row_group_sum(sum_g_x, group) * r / float(c);
#pragma unroll
    for (int k = 0; k < kRowPacks; ++k) {
      const int j = first_column + k * column_step;
      if (!active || j >= c) continue;
      float xf[kPackSize], dyf[kPackSize], wf[kPackSize], dx[kPackSize];
      unpack(xf, x[k]);
      unpack(dyf, dy[k]);
      unpack(wf, w[k]);
#pragma unroll
      for (int e = 0; e < kPackSize; ++e) {
        dx[e] = r * (dyf[e] * wf[e] - xf[e] * r * mean_g_xhat);
        dweight[k][e] += dyf[e] * xf[e] * r;
      }
      if (residual_grad != nullptr) {
        float rf[kPackSize];
        unpack(rf, residual[k]);
#pragma unroll
        for (int e = 0; e < kPackSize; ++e) dx[e] += rf[e];
      }
      store_pack(dinp + offset + j, dx);
    }
  }
  float* block_partial = partials + int64_t(blockIdx.x) * c;
  if (rows_per_block == 1) {
#pragma unroll
    for (int k = 0; k < kRowPacks; ++k) {
      const int j = first_column + k * column_step;
      if (j >= c) continue;
      auto* out = reinterpret_cast<float4*>(block_partial + j);
      out[0] = make_float4(dweight[k][0], dweight[k][1], dweight[k][2], dweight[k][3]);
      out[1] = make_float4(dweight[k][4], dweight[k][5], dweight[k][6], dweight[k][7]);
    }
    return;
  }
  // Several rows per block: sum the groups' partials in group order.
  extern __shared__ float block_sum_of_groups[];  // [c]
  for (int g = 0; g < rows_per_block; ++g) {
    if (row_in_block == g) {
#pragma unroll
      for (int k = 0; k < kRowPacks; ++k) {
        const int j = first_column + k * column_step;
        if (j >= c) continue;
#pragma unroll
        for (int e = 0; e < kPackSize; ++e)
          block_sum_of_groups[j + e] = (g == 0 ? 0.0f : block_sum_of_groups[j + e]) + dweight[k][e];
      }
    }
    __syncthreads();
  }
  for (int j = threadIdx.x; j < c; j += blockDim.x) block_partial[j] = block_sum_of_groups[j];
}

__global__ void rmsnorm_backward_kernel(__nv_bfloat16* __restrict__ dinp, float* __restrict__ partials,
                                        const __nv_bfloat16* __restrict__ dout,
                                        const __nv_bfloat16* __restrict__ inp,
                                        const __nv_bfloat16* __restrict__ weight,
                                        const __nv_bfloat16* __restrict__ residual_grad,
                                        const float* __restrict__ rstd, int64_t n, int64_t c) {
  extern __shared__ float dweight_partial[];  // [c]
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) dweight_partial[j] = 0.0f;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const __nv_bfloat16* x_row = inp + row * c;
    const __nv_bfloat16* dy_row = dout + row * c;
    const float r = rstd[row];
    float sum_g_x = 0.0f;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      const float x = __bfloat162float(x_row[j]), dy = __bfloat162float(dy_row[j]);
      sum_g_x += dy * __bfloat162float(weight[j]) * x;
      dweight_partial[j] += dy * x * r;
    }
    const float mean_g_xhat = block_sum(sum_g_x) * r / float(c);
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      const float x = __bfloat162float(x_row[j]), dy = __bfloat162float(dy_row[j]);
      float dx = r * (dy * __bfloat162float(weight[j]) - x * r * mean_g_xhat);
      if (residual_grad != nullptr) dx += __bfloat162float(residual_grad[row * c + j]);
      dinp[row * c + j] = __float2bfloat16_rn(dx);
    }
  }
  float* block_partial = partials + int64_t(blockIdx.x) * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) block_partial[j] = dweight_partial[j];
}

// Block: kReduceSlices warps over 32 columns; warp s sums its run of
// consecutive partials in block order, then warp 0 adds the runs in order: a
// fixed order for a given number of partials, with enough warps in flight to
// read them at L2 speed (one thread per column walking all of them left the GPU idle).
__global__ void rmsnorm_dweight_reduce_kernel(float* __restrict__ dweight, const float* __restrict__ partials,
                                              int num_partials, int64_t c) {
  __shared__ float run_sums[kReduceSlices][32];
  const int lane = threadIdx.x % 32, slice = threadIdx.x / 32;
  const int64_t j = int64_t(blockIdx.x) * 32 + lane;
  const int per_slice = (num_partials + kReduceSlices - 1) / kReduceSlices;
  const int begin = slice * per_slice, end = min(num_partials, begin + per_slice);
  float sum = 0.0f;
  if (j < c) {
    for (int b = begin; b < end; ++b) sum += partials[int64_t(b) * c + j];
  }
  run_sums[slice][lane] = sum;
  __syncthreads();
  if (slice != 0 || j >= c) return;
  float total = 0.0f;
  for (int s = 0; s < kReduceSlices; ++s) total += run_sums[s][lane];
  dweight[j] += total;
}

void check_sizes(const char* op, int64_t n, int64_t c) {
  if (n < 0 || n > INT32_MAX || c < 1)
    throw Error(std::string(op) + ": rows " + std::to_string(n) + " must be in [0, 2^31) and width " +
                std::to_string(c) + " at least 1");
}

// Threads covering one row with V columns each: whole warps, at most kMaxThreads.
int threads_for_row(int64_t c, int v, int limit) {
  const int64_t needed = (c + v - 1) / v;
  return int(std::min<int64_t>(limit, (needed + 31) / 32 * 32));
}

int multiprocessor_count() {
  int device = 0, num_sms = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  return num_sms;
}

// Blocks that fit on the GPU at once, at most `wanted` and kMaxPartialBlocks.
template <typename Kernel>
int resident_blocks(Kernel kernel, int threads, size_t shared_bytes, int64_t wanted) {
  int blocks_per_sm = 0;
  MOEBENCH_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, threads, shared_bytes));
  const int64_t resident = int64_t(std::max(blocks_per_sm, 1)) * multiprocessor_count();
  return int(std::min<int64_t>({wanted, kMaxPartialBlocks, resident}));
}

// Launches the packed kernel; returns its grid size (the number of partials).
int launch_packed_backward(__nv_bfloat16* dinp, float* scratch, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                           const __nv_bfloat16* weight, const __nv_bfloat16* residual_grad, const float* rstd,
                           int64_t n, int64_t c, cudaStream_t stream) {
  // Threads per row: each owns up to kRowPacks packs; narrow rows take the
  // smallest power-of-two group of lanes that covers them, wider ones whole warps.
  const int64_t packs = c / kPackSize;
  const int64_t needed = (packs + kRowPacks - 1) / kRowPacks;
  const int group = needed <= 32 ? int(std::bit_ceil(uint64_t(needed))) : int((needed + 31) / 32 * 32);
  const int rows_per_block = std::max(1, kPackedBlockThreads / group);
  const int threads = rows_per_block * group;
  const size_t shared_bytes = rows_per_block > 1 ? size_t(c) * sizeof(float) : 0;
  auto kernel = rmsnorm_backward_packed_kernel;
  const int blocks = resident_blocks(kernel, threads, shared_bytes, (n + rows_per_block - 1) / rows_per_block);
  kernel<<<blocks, threads, shared_bytes, stream>>>(dinp, scratch, dout, inp, weight, residual_grad, rstd, n,
                                                     int(c), group);
  return blocks;
}

int launch_elementwise_backward(__nv_bfloat16* dinp, float* scratch, const __nv_bfloat16* dout,
                                const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                                const __nv_bfloat16* residual_grad, const float* rstd, int64_t n, int64_t c,
                                cudaStream_t stream) {
  int device = 0, shared_limit = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  // The dweight partial lives in shared memory, beside block_sum's 32 floats.
  const size_t shared_bytes = size_t(c) * sizeof(float);
  if (shared_bytes + 32 * sizeof(float) > size_t(shared_limit))
    throw Error("rmsnorm_backward: width " + std::to_string(c) + " needs " + std::to_string(shared_bytes) +
                " bytes of shared memory for the dweight partial; this GPU allows " +
                std::to_string(shared_limit) + " per block");
  const int threads = threads_for_row(c, 1, kBackwardThreads);
  auto kernel = rmsnorm_backward_kernel;
  // Past 48 KiB (static included) a block needs the opt-in; ask early, with room for block_sum's floats.
  if (shared_bytes > 40 * 1024)
    MOEBENCH_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_bytes)));
  const int blocks = resident_blocks(kernel, threads, shared_bytes, n);
  kernel<<<blocks, threads, shared_bytes, stream>>>(dinp, scratch, dout, inp, weight, residual_grad, rstd, n, c);
  return blocks;
}

}  // namespace

void rmsnorm_forward(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                     std::int64_t n, std::int64_t c, float eps, cudaStream_t stream) {
  check_sizes("rmsnorm_forward", n, c);
  if (n == 0) return;
  const bool packed = c % kPackSize == 0 && is_pack_aligned(out) && is_pack_aligned(inp) && is_pack_aligned(weight);
  if (packed) {
    rmsnorm_forward_kernel<kPackSize><<<unsigned(n), threads_for_row(c, kPackSize, kMaxThreads), 0, stream>>>(
        out, rstd, inp, weight, c, eps);
  } else {
    rmsnorm_forward_kernel<1><<<unsigned(n), threads_for_row(c, 1, kMaxThreads), 0, stream>>>(out, rstd, inp,
                                                                                               weight, c, eps);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

std::size_t rmsnorm_backward_scratch_floats(std::int64_t n, std::int64_t c) {
  // Both backward kernels run at most min(n, kMaxPartialBlocks) blocks.
  return std::size_t(std::min<std::int64_t>(n, kMaxPartialBlocks)) * std::size_t(std::max<std::int64_t>(c, 0));
}

void rmsnorm_backward(__nv_bfloat16* dinp, float* dweight, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                      const __nv_bfloat16* weight, const float* rstd, const __nv_bfloat16* residual_grad,
                      std::int64_t n, std::int64_t c, float* scratch, cudaStream_t stream) {
  check_sizes("rmsnorm_backward", n, c);
  if (n == 0) return;
  // The packed kernel stores its partials as float4s too, hence scratch.
  const bool packed = c % kPackSize == 0 && c <= kMaxPackedWidth && is_pack_aligned(dinp) &&
                      is_pack_aligned(dout) && is_pack_aligned(inp) && is_pack_aligned(weight) &&
                      (residual_grad == nullptr || is_pack_aligned(residual_grad)) && is_pack_aligned(scratch);
  const int blocks =
      packed ? launch_packed_backward(dinp, scratch, dout, inp, weight, residual_grad, rstd, n, c, stream)
             : launch_elementwise_backward(dinp, scratch, dout, inp, weight, residual_grad, rstd, n, c, stream);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
  rmsnorm_dweight_reduce_kernel<<<unsigned((c + 31) / 32), 32 * kReduceSlices, 0, stream>>>(dweight, scratch,
                                                                                           blocks, c);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
