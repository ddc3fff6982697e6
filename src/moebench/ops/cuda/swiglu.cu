// SwiGLU on the GPU over Megatron's fused fc1 output (see ops/swiglu.h), bf16
// in and out, fp32 math:
//   forward   out[N,F] = silu(gate) * up,  inp[N,2F] = [gate | up]
//   backward  dgate = dout * up * s * (1 + gate * (1 - s)), dup = dout * silu(gate),
//             s = sigmoid(gate), written to dinp[N,2F] = [dgate | dup]
// Kernels (version 1): a grid-stride loop in which each thread handles V
// consecutive columns of one row; V = 8 (one 16-byte pack per array) when F is
// a multiple of 8 and every pointer is 16-byte aligned, else V = 1.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/swiglu.cu
// Check and time: tests/gpu/swiglu_test.cpp (SwigluTiming.* prints TB/s).
#include <algorithm>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/cuda/bf16_pack.cuh"
#include "moebench/ops/swiglu.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // many waves on 132 SMs; the grid-stride loop covers the rest

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

template <int V>
__global__ void swiglu_forward_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ inp,
                                      int64_t n, int64_t f) {
  const int64_t groups_per_row = f / V;
  const int64_t total = n * groups_per_row;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < total; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = g / groups_per_row;
    const int64_t col = (g - row * groups_per_row) * V;
    const __nv_bfloat16* gate_row = inp + row * 2 * f;
    float gate[V], up[V], y[V];
    load_bf16<V>(gate, gate_row + col);
    load_bf16<V>(up, gate_row + f + col);
#pragma unroll
    for (int k = 0; k < V; ++k) y[k] = gate[k] * sigmoid(gate[k]) * up[k];
    store_bf16<V>(out + row * f + col, y);
  }
}

template <int V>
__global__ void swiglu_backward_kernel(__nv_bfloat16* __restrict__ dinp, const __nv_bfloat16* __restrict__ dout,
                                       const __nv_bfloat16* __restrict__ inp, int64_t n, int64_t f) {
  const int64_t groups_per_row = f / V;
  const int64_t total = n * groups_per_row;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < total; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = g / groups_per_row;
    const int64_t col = (g - row * groups_per_row) * V;
    float gate[V], up[V], dy[V], dgate[V], dup[V];
    load_bf16<V>(gate, inp + row * 2 * f + col);
    load_bf16<V>(up, inp + row * 2 * f + f + col);
    load_bf16<V>(dy, dout + row * f + col);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float s = sigmoid(gate[k]);
      dgate[k] = dy[k] * up[k] * s * (1.0f + gate[k] * (1.0f - s));
      dup[k] = dy[k] * gate[k] * s;
    }
    store_bf16<V>(dinp + row * 2 * f + col, dgate);
    store_bf16<V>(dinp + row * 2 * f + f + col, dup);
  }
}

void check_sizes(const char* op, int64_t n, int64_t f) {
  if (n < 0 || f < 1)
    throw Error(std::string(op) + ": rows " + std::to_string(n) + " must be >= 0 and half width " +
                std::to_string(f) + " >= 1");
}

// Enough blocks to fill the GPU several times over; the loop strides past the rest.
unsigned blocks_for(int64_t work_items) {
  return unsigned(std::clamp<int64_t>((work_items + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

}  // namespace

void swiglu_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, std::int64_t n, std::int64_t f,
                    cudaStream_t stream) {
  check_sizes("swiglu_forward", n, f);
  if (n == 0) return;
  if (f % kPackSize == 0 && is_pack_aligned(out) && is_pack_aligned(inp)) {
    swiglu_forward_kernel<kPackSize><<<blocks_for(n * f / kPackSize), kThreads, 0, stream>>>(out, inp, n, f);
  } else {
    swiglu_forward_kernel<1><<<blocks_for(n * f), kThreads, 0, stream>>>(out, inp, n, f);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

void swiglu_backward(__nv_bfloat16* dinp, const __nv_bfloat16* dout, const __nv_bfloat16* inp, std::int64_t n,
                     std::int64_t f, cudaStream_t stream) {
  check_sizes("swiglu_backward", n, f);
  if (n == 0) return;
  if (f % kPackSize == 0 && is_pack_aligned(dinp) && is_pack_aligned(dout) && is_pack_aligned(inp)) {
    swiglu_backward_kernel<kPackSize><<<blocks_for(n * f / kPackSize), kThreads, 0, stream>>>(dinp, dout, inp, n, f);
  } else {
    swiglu_backward_kernel<1><<<blocks_for(n * f), kThreads, 0, stream>>>(dinp, dout, inp, n, f);
  }
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
