// RMSNorm on the GPU, bf16 activations with fp32 math (see ops/rmsnorm.h):
//   forward   out[N,C] = inp * rstd * weight, rstd[N] = 1 / sqrt(mean(inp^2) + eps)
//   backward  dinp[N,C] = rstd * (g - xhat * mean(g * xhat)), g = dout * weight,
//             xhat = inp * rstd;  dweight[C] += sum over rows of dout * xhat
// Kernels (version 1 of each):
//   rmsnorm_forward_kernel        one block per row; each thread owns the
//                                 columns of its 16-byte packs, sums squares,
//                                 block-reduces, then rereads the row (L1) to write.
//   rmsnorm_backward_kernel       a grid of up to 512 blocks, each walking rows
//                                 blockIdx.x, +gridDim.x, ...; writes dinp and keeps
//                                 its dweight partial in shared memory (C floats,
//                                 each column owned by one thread: no atomics),
//                                 then stores the partial to scratch[block, C].
//   rmsnorm_dweight_reduce_kernel dweight[j] += sum of the partials in block order,
//                                 so the result does not depend on scheduling.
// Rows whose width is a multiple of 8 with 16-byte aligned pointers use packs
// of 8 bf16; any other width takes the element-wise path.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/rmsnorm.cu
// Check and time: tests/gpu/rmsnorm_test.cpp (RmsnormTiming.* prints GB/s).
#include <algorithm>
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

template <int V>
__global__ void rmsnorm_backward_kernel(__nv_bfloat16* __restrict__ dinp, float* __restrict__ partials,
                                        const __nv_bfloat16* __restrict__ dout,
                                        const __nv_bfloat16* __restrict__ inp,
                                        const __nv_bfloat16* __restrict__ weight,
                                        const float* __restrict__ rstd, int64_t n, int64_t c) {
  extern __shared__ float dweight_partial[];  // [c]
  const int64_t first = int64_t(threadIdx.x) * V;
  const int64_t step = int64_t(blockDim.x) * V;
  for (int64_t j = first; j < c; j += step) {
#pragma unroll
    for (int k = 0; k < V; ++k) dweight_partial[j + k] = 0.0f;
  }
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const __nv_bfloat16* x_row = inp + row * c;
    const __nv_bfloat16* dy_row = dout + row * c;
    const float r = rstd[row];
    float sum_g_x = 0.0f;
    for (int64_t j = first; j < c; j += step) {
      float x[V], dy[V], w[V];
      load_bf16<V>(x, x_row + j);
      load_bf16<V>(dy, dy_row + j);
      load_bf16<V>(w, weight + j);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        sum_g_x += dy[k] * w[k] * x[k];
        dweight_partial[j + k] += dy[k] * x[k] * r;
      }
    }
    const float mean_g_xhat = block_sum(sum_g_x) * r / float(c);
    for (int64_t j = first; j < c; j += step) {
      float x[V], dy[V], w[V], dx[V];
      load_bf16<V>(x, x_row + j);
      load_bf16<V>(dy, dy_row + j);
      load_bf16<V>(w, weight + j);
#pragma unroll
      for (int k = 0; k < V; ++k) dx[k] = r * (dy[k] * w[k] - x[k] * r * mean_g_xhat);
      store_bf16<V>(dinp + row * c + j, dx);
    }
  }
  float* block_partial = partials + int64_t(blockIdx.x) * c;
  for (int64_t j = first; j < c; j += step) {
#pragma unroll
    for (int k = 0; k < V; ++k) block_partial[j + k] = dweight_partial[j + k];
  }
}

__global__ void rmsnorm_dweight_reduce_kernel(float* __restrict__ dweight, const float* __restrict__ partials,
                                              int num_partials, int64_t c) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= c) return;
  float sum = 0.0f;
  for (int b = 0; b < num_partials; ++b) sum += partials[int64_t(b) * c + j];
  dweight[j] += sum;
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
  return std::size_t(std::min<std::int64_t>(n, kMaxPartialBlocks)) * std::size_t(std::max<std::int64_t>(c, 0));
}

void rmsnorm_backward(__nv_bfloat16* dinp, float* dweight, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                      const __nv_bfloat16* weight, const float* rstd, std::int64_t n, std::int64_t c,
                      float* scratch, cudaStream_t stream) {
  check_sizes("rmsnorm_backward", n, c);
  if (n == 0) return;
  int device = 0, shared_limit = 0, num_sms = 0;
  MOEBENCH_CUDA_CHECK(cudaGetDevice(&device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  MOEBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  // The dweight partial lives in shared memory, beside block_sum's 32 floats.
  const size_t shared_bytes = size_t(c) * sizeof(float);
  if (shared_bytes + 32 * sizeof(float) > size_t(shared_limit))
    throw Error("rmsnorm_backward: width " + std::to_string(c) + " needs " + std::to_string(shared_bytes) +
                " bytes of shared memory for the dweight partial; this GPU allows " +
                std::to_string(shared_limit) + " per block");
  const bool packed = c % kPackSize == 0 && is_pack_aligned(dinp) && is_pack_aligned(dout) &&
                      is_pack_aligned(inp) && is_pack_aligned(weight);
  const int v = packed ? kPackSize : 1;
  const int threads = threads_for_row(c, v, kBackwardThreads);
  auto kernel = packed ? rmsnorm_backward_kernel<kPackSize> : rmsnorm_backward_kernel<1>;
  // Past 48 KiB (static included) a block needs the opt-in; ask early, with room for block_sum's floats.
  if (shared_bytes > 40 * 1024)
    MOEBENCH_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_bytes)));
  int blocks_per_sm = 0;
  MOEBENCH_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, threads, shared_bytes));
  const int blocks = int(std::min<int64_t>({n, kMaxPartialBlocks, int64_t(std::max(blocks_per_sm, 1)) * num_sms}));
  kernel<<<blocks, threads, shared_bytes, stream>>>(dinp, scratch, dout, inp, weight, rstd, n, c);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
  constexpr int kReduceThreads = 256;
  rmsnorm_dweight_reduce_kernel<<<unsigned((c + kReduceThreads - 1) / kReduceThreads), kReduceThreads, 0, stream>>>(
      dweight, scratch, blocks, c);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
