// Cross-entropy over a large padded vocabulary on the GPU (see ops/cross_entropy.h):
//   forward   logsumexp[i] = log(sum_j<V exp(logits[i, j])), losses[i] = logsumexp[i] - logits[i, label]
//   backward  dlogits[i, j] = dlosses[i] * (exp(logits[i, j] - logsumexp[i]) - [j == label]), j < V;
//             0 for V <= j < Vpad
//   masked mean and its backward over the N per-token losses.
// logits are bf16 [N, Vpad]; all math is fp32, in base 2 (exp2 of x * log2(e))
// so each exponential is one hardware ex2.
// Kernels (version 1):
//   cross_entropy_forward_kernel   one block per row; each thread keeps a running
//                                  (max, sum of exp) over its 16-byte packs, rescaling
//                                  the sum when the max grows (one pass over the row,
//                                  no fp32 copy of the logits); then a block max and
//                                  a block sum of the rescaled sums.
//   cross_entropy_backward_kernel  one block per row; each element is read and then
//                                  written by the same thread, so dlogits may alias logits.
//   masked_mean_*_kernel           one block of 1024 threads (N is a few thousand tokens).
// The pack path needs Vpad % 8 == 0 and 16-byte aligned rows (Megatron pads
// the vocabulary to a multiple of 128); other widths take the element-wise path.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/cross_entropy.cu
// Check and time: tests/gpu/cross_entropy_test.cpp (CrossEntropyTiming.* prints TB/s).
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cross_entropy.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/cuda/block_reduce.cuh"

namespace moebench::ops::cuda {
namespace {

constexpr int kRowThreads = 512;
constexpr int kMeanThreads = 1024;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int V>
__global__ void cross_entropy_forward_kernel(float* __restrict__ losses, float* __restrict__ logsumexp,
                                             const __nv_bfloat16* __restrict__ logits,
                                             const int64_t* __restrict__ labels, int64_t vocab,
                                             int64_t padded_vocab) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* row_logits = logits + row * padded_vocab;
  // Running maximum and sum of 2^(y - max) over this thread's columns, y = x * log2(e).
  float max2 = -INFINITY, sum = 0.0f;
  for (int64_t j = int64_t(threadIdx.x) * V; j < vocab; j += int64_t(blockDim.x) * V) {
    float y[V];
    load_bf16<V>(y, row_logits + j);
    float pack_max = -INFINITY;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      y[k] = j + k < vocab ? y[k] * kLog2e : -INFINITY;  // padded columns count as -inf
      pack_max = fmaxf(pack_max, y[k]);
    }
    const float new_max = fmaxf(max2, pack_max);
    float pack_sum = 0.0f;
#pragma unroll
    for (int k = 0; k < V; ++k) pack_sum += exp2f(y[k] - new_max);
    sum = sum * exp2f(max2 - new_max) + pack_sum;  // max2 = -inf scales the empty sum by 0
    max2 = new_max;
  }
  const float row_max2 = block_max(max2);
  const float row_sum = block_sum(max2 == -INFINITY ? 0.0f : sum * exp2f(max2 - row_max2));
  if (threadIdx.x == 0) {
    const float lse = (row_max2 + log2f(row_sum)) * kLn2;
    const int64_t label = labels[row];
    const bool valid = label >= 0 && label < vocab;
    logsumexp[row] = lse;
    losses[row] = valid ? lse - __bfloat162float(row_logits[label]) : NAN;
  }
}

// No __restrict__ on dlogits and logits: they may be the same buffer.
template <int V>
__global__ void cross_entropy_backward_kernel(__nv_bfloat16* dlogits, const float* __restrict__ dlosses,
                                              const __nv_bfloat16* logits, const int64_t* __restrict__ labels,
                                              const float* __restrict__ logsumexp, int64_t vocab,
                                              int64_t padded_vocab) {
  const int64_t row = blockIdx.x;
  const int64_t label = labels[row];
  const bool valid = label >= 0 && label < vocab;
  const float dloss = valid ? dlosses[row] : NAN;
  const float lse2 = logsumexp[row] * kLog2e;
  const __nv_bfloat16* row_logits = logits + row * padded_vocab;
  __nv_bfloat16* row_dlogits = dlogits + row * padded_vocab;
  for (int64_t j = int64_t(threadIdx.x) * V; j < padded_vocab; j += int64_t(blockDim.x) * V) {
    float x[V];
    load_bf16<V>(x, row_logits + j);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int64_t column = j + k;
      const float p = exp2f(x[k] * kLog2e - lse2);
      x[k] = column < vocab ? dloss * (p - (column == label ? 1.0f : 0.0f)) : 0.0f;
    }
    store_bf16<V>(row_dlogits + j, x);
  }
}

__global__ void masked_mean_forward_kernel(float* __restrict__ mean, const float* __restrict__ losses,
                                           const float* __restrict__ loss_mask, int64_t n) {
  float weighted = 0.0f, count = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float m = loss_mask != nullptr ? loss_mask[i] : 1.0f;
    weighted += m * losses[i];
    count += m;
  }
  weighted = block_sum(weighted);
  count = block_sum(count);
  if (threadIdx.x == 0) *mean = count > 0.0f ? weighted / count : NAN;
}

__global__ void masked_mean_backward_kernel(float* __restrict__ dlosses, float dmean,
                                            const float* __restrict__ loss_mask, int64_t n) {
  float count = 0.0f;
  if (loss_mask != nullptr) {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) count += loss_mask[i];
    count = block_sum(count);
  } else {
    count = float(n);
  }
  const float scale = count > 0.0f ? dmean / count : NAN;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    dlosses[i] = loss_mask != nullptr ? scale * loss_mask[i] : scale;
}

void check_sizes(const char* op, int64_t n, int64_t vocab, int64_t padded_vocab) {
  if (n < 0 || n > INT32_MAX)
    throw Error(std::string(op) + ": token count " + std::to_string(n) + " must be in [0, 2^31)");
  if (vocab < 1 || vocab > padded_vocab)
    throw Error(std::string(op) + ": vocabulary size " + std::to_string(vocab) +
                " must be in [1, padded vocabulary size " + std::to_string(padded_vocab) +
                "]; pass the tokenizer's vocabulary size and the logits' row width");
}

}  // namespace

void cross_entropy_forward(float* losses, float* logsumexp, const __nv_bfloat16* logits, const std::int64_t* labels,
                           std::int64_t n, std::int64_t vocab, std::int64_t padded_vocab, cudaStream_t stream) {
  check_sizes("cross_entropy_forward", n, vocab, padded_vocab);
  if (n == 0) return;
  if (padded_vocab % kPackSize == 0 && is_pack_aligned(logits)) {
    cross_entropy_forward_kernel<kPackSize><<<unsigned(n), kRowThreads, 0, stream>>>(losses, logsumexp, logits,
                                                                                     labels, vocab, padded_vocab);
  } else {
    cross_entropy_forward_kernel<1><<<unsigned(n), kRowThreads, 0, stream>>>(losses, logsumexp, logits, labels,
                                                                             vocab, padded_vocab);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_backward(__nv_bfloat16* dlogits, const float* dlosses, const __nv_bfloat16* logits,
                            const std::int64_t* labels, const float* logsumexp, std::int64_t n, std::int64_t vocab,
                            std::int64_t padded_vocab, cudaStream_t stream) {
  check_sizes("cross_entropy_backward", n, vocab, padded_vocab);
  if (n == 0) return;
  if (padded_vocab % kPackSize == 0 && is_pack_aligned(logits) && is_pack_aligned(dlogits)) {
    cross_entropy_backward_kernel<kPackSize><<<unsigned(n), kRowThreads, 0, stream>>>(
        dlogits, dlosses, logits, labels, logsumexp, vocab, padded_vocab);
  } else {
    cross_entropy_backward_kernel<1><<<unsigned(n), kRowThreads, 0, stream>>>(dlogits, dlosses, logits, labels,
                                                                              logsumexp, vocab, padded_vocab);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void masked_mean_forward(float* mean, const float* losses, const float* loss_mask, std::int64_t n,
                         cudaStream_t stream) {
  if (n < 1) throw Error("masked_mean_forward: token count " + std::to_string(n) + " must be >= 1");
  masked_mean_forward_kernel<<<1, kMeanThreads, 0, stream>>>(mean, losses, loss_mask, n);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void masked_mean_backward(float* dlosses, float dmean, const float* loss_mask, std::int64_t n,
                          cudaStream_t stream) {
  if (n < 1) throw Error("masked_mean_backward: token count " + std::to_string(n) + " must be >= 1");
  masked_mean_backward_kernel<<<1, kMeanThreads, 0, stream>>>(dlosses, dmean, loss_mask, n);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
