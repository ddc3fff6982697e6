// Fused multi-tensor AdamW on the GPU (see ops/adam.h):
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + weight_decay * p);  model_param = bf16(p)
// with bc1 = 1 - beta1^step, bc2 = 1 - beta2^step formed in double on the host.
// p, m, v, g are fp32; the bf16 compute copy is written from the new p in the same pass,
// so a step moves 30 bytes per parameter (16 read, 14 written) and nothing else.
// Kernel (version 1): adamw_chunk_kernel, one block per chunk descriptor (a device
// array built once by split_into_adam_chunks); chunks whose pointers are all
// 16-byte aligned (8 for the bf16 copy) go 4 elements at a time (float4), the
// rest element by element. One launch updates every parameter of a group.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c src/moebench/ops/cuda/adam.cu
// Check and time: tests/gpu/adam_test.cpp (AdamTiming.* prints TB/s).
#include <cmath>
#include <cstdint>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/ops/adam.h"

namespace moebench::ops::cuda {
namespace {

constexpr int kThreads = 512;

struct AdamScalars {
  float lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2;
};

__device__ inline void adamw_element(float& p, float& m, float& v, float g, const AdamScalars& s) {
  m = s.beta1 * m + (1.0f - s.beta1) * g;
  v = s.beta2 * v + (1.0f - s.beta2) * g * g;
  const float update = (m / s.bias_correction1) / (sqrtf(v / s.bias_correction2) + s.eps);
  p -= s.lr * (update + s.weight_decay * p);
}

__device__ inline bool aligned(const void* pointer, std::uintptr_t bytes) {
  return reinterpret_cast<std::uintptr_t>(pointer) % bytes == 0;
}

__global__ void adamw_chunk_kernel(const AdamTensor* __restrict__ chunks, AdamScalars scalars) {
  const AdamTensor chunk = chunks[blockIdx.x];
  const bool has_model = chunk.model_param != nullptr;
  int64_t vector_end = 0;  // elements before this go 4 at a time
  if (aligned(chunk.main_param, 16) && aligned(chunk.exp_avg, 16) && aligned(chunk.exp_avg_sq, 16) &&
      aligned(chunk.grad, 16) && (!has_model || aligned(chunk.model_param, 8))) {
    vector_end = chunk.numel / 4 * 4;
    for (int64_t i = int64_t(threadIdx.x) * 4; i < vector_end; i += int64_t(blockDim.x) * 4) {
      float4 p = *reinterpret_cast<const float4*>(chunk.main_param + i);
      float4 m = *reinterpret_cast<const float4*>(chunk.exp_avg + i);
      float4 v = *reinterpret_cast<const float4*>(chunk.exp_avg_sq + i);
      const float4 g = *reinterpret_cast<const float4*>(chunk.grad + i);
      adamw_element(p.x, m.x, v.x, g.x, scalars);
      adamw_element(p.y, m.y, v.y, g.y, scalars);
      adamw_element(p.z, m.z, v.z, g.z, scalars);
      adamw_element(p.w, m.w, v.w, g.w, scalars);
      *reinterpret_cast<float4*>(chunk.main_param + i) = p;
      *reinterpret_cast<float4*>(chunk.exp_avg + i) = m;
      *reinterpret_cast<float4*>(chunk.exp_avg_sq + i) = v;
      if (has_model) {
        struct alignas(8) Bf16x4 {
          __nv_bfloat162 low, high;
        } model{__floats2bfloat162_rn(p.x, p.y), __floats2bfloat162_rn(p.z, p.w)};
        *reinterpret_cast<Bf16x4*>(chunk.model_param + i) = model;
      }
    }
  }
  for (int64_t i = vector_end + threadIdx.x; i < chunk.numel; i += blockDim.x) {
    float p = chunk.main_param[i], m = chunk.exp_avg[i], v = chunk.exp_avg_sq[i];
    adamw_element(p, m, v, chunk.grad[i], scalars);
    chunk.main_param[i] = p;
    chunk.exp_avg[i] = m;
    chunk.exp_avg_sq[i] = v;
    if (has_model) chunk.model_param[i] = __float2bfloat16_rn(p);
  }
}

}  // namespace

std::vector<AdamTensor> split_into_adam_chunks(const std::vector<AdamTensor>& tensors) {
  std::vector<AdamTensor> chunks;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const AdamTensor& tensor = tensors[t];
    if (tensor.numel < 0)
      throw Error("split_into_adam_chunks: tensor " + std::to_string(t) + " has numel " +
                  std::to_string(tensor.numel) + "; sizes must be >= 0");
    if (tensor.numel > 0 && (!tensor.main_param || !tensor.exp_avg || !tensor.exp_avg_sq || !tensor.grad))
      throw Error("split_into_adam_chunks: tensor " + std::to_string(t) +
                  " lacks a main_param, exp_avg, exp_avg_sq or grad pointer; only model_param may be null");
    for (int64_t start = 0; start < tensor.numel; start += kAdamChunkElements) {
      AdamTensor chunk;
      chunk.main_param = tensor.main_param + start;
      chunk.exp_avg = tensor.exp_avg + start;
      chunk.exp_avg_sq = tensor.exp_avg_sq + start;
      chunk.grad = tensor.grad + start;
      chunk.model_param = tensor.model_param ? tensor.model_param + start : nullptr;
      chunk.numel = std::min(kAdamChunkElements, tensor.numel - start);
      chunks.push_back(chunk);
    }
  }
  return chunks;
}

void adamw_step(const AdamTensor* chunks, std::int64_t num_chunks, std::int64_t step,
                const AdamHyperparams& hyperparams, cudaStream_t stream) {
  if (step < 1)
    throw Error("adamw_step: step " + std::to_string(step) +
                " is not a valid update count; steps count from 1 (the first update)");
  if (num_chunks < 0 || num_chunks > INT32_MAX)
    throw Error("adamw_step: chunk count " + std::to_string(num_chunks) + " must be in [0, 2^31)");
  if (num_chunks == 0) return;
  const double step_d = static_cast<double>(step);
  const AdamScalars scalars{float(hyperparams.lr),
                            float(hyperparams.beta1),
                            float(hyperparams.beta2),
                            float(hyperparams.eps),
                            float(hyperparams.weight_decay),
                            float(1.0 - std::pow(hyperparams.beta1, step_d)),
                            float(1.0 - std::pow(hyperparams.beta2, step_d))};
  adamw_chunk_kernel<<<unsigned(num_chunks), kThreads, 0, stream>>>(chunks, scalars);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moebench::ops::cuda
