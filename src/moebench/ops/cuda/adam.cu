// Fused multi-tensor AdamW on the GPU (see ops/adam.h):
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + weight_decay * p);  model_param = bf16(p)
// with bc1 = 1 - beta1^step, bc2 = 1 - beta2^step formed in double on the host.
// p and g are fp32; m and v are each stored in fp32 or bf16 (Megatron's
// precision-aware optimizer) and the arithmetic is fp32 either way: a bf16
// moment is widened on load and rounded to nearest even on store. The bf16
// compute copy is written from the new p in the same pass, so a step moves
// 30 bytes per parameter with fp32 moments (16 read, 14 written) and 22 with
// both in bf16 (12 read, 10 written), and nothing else.
// Kernel (version 1): adamw_chunk_kernel<m, v>, one block per chunk descriptor
// (a device array built once by split_into_adam_chunks); chunks whose pointers
// are all aligned to 4 elements (16 bytes for fp32 arrays, 8 for bf16) go 4
// elements at a time, the rest element by element. One launch updates every
// parameter of a group. One template serves the four moment storages.
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
  float lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
};

__device__ inline void adamw_element(float& p, float& m, float& v, float grad, const AdamScalars& s) {
  const float g = grad * s.grad_scale;
  m = s.beta1 * m + (1.0f - s.beta1) * g;
  v = s.beta2 * v + (1.0f - s.beta2) * g * g;
  const float update = (m / s.bias_correction1) / (sqrtf(v / s.bias_correction2) + s.eps);
  p -= s.lr * (update + s.weight_decay * p);
}

// Loads widen to fp32 and stores round to nearest even, whatever the storage:
// one element, or four consecutive ones from an address aligned to four.
__device__ inline float load1(const float* x) { return *x; }
__device__ inline float load1(const __nv_bfloat16* x) { return __bfloat162float(*x); }
__device__ inline void store1(float* x, float value) { *x = value; }
__device__ inline void store1(__nv_bfloat16* x, float value) { *x = __float2bfloat16_rn(value); }

struct alignas(8) Bf16x4 {
  __nv_bfloat162 low, high;
};

__device__ inline float4 load4(const float* x) { return *reinterpret_cast<const float4*>(x); }
__device__ inline float4 load4(const __nv_bfloat16* x) {
  const Bf16x4 packed = *reinterpret_cast<const Bf16x4*>(x);
  const float2 low = __bfloat1622float2(packed.low), high = __bfloat1622float2(packed.high);
  return {low.x, low.y, high.x, high.y};
}
__device__ inline void store4(float* x, float4 value) { *reinterpret_cast<float4*>(x) = value; }
__device__ inline void store4(__nv_bfloat16* x, float4 value) {
  *reinterpret_cast<Bf16x4*>(x) = {__floats2bfloat162_rn(value.x, value.y), __floats2bfloat162_rn(value.z, value.w)};
}

template <typename T>
__device__ inline bool aligned4(const T* pointer) {
  return reinterpret_cast<std::uintptr_t>(pointer) % (4 * sizeof(T)) == 0;
}

template <typename ExpAvg, typename ExpAvgSq>
__global__ void adamw_chunk_kernel(const AdamTensorOf<ExpAvg, ExpAvgSq>* __restrict__ chunks, AdamScalars scalars) {
  const AdamTensorOf<ExpAvg, ExpAvgSq> chunk = chunks[blockIdx.x];
  const bool has_model = chunk.model_param != nullptr;
  int64_t vector_end = 0;  // elements before this go 4 at a time
  if (aligned4(chunk.main_param) && aligned4(chunk.exp_avg) && aligned4(chunk.exp_avg_sq) && aligned4(chunk.grad) &&
      (!has_model || aligned4(chunk.model_param))) {
    vector_end = chunk.numel / 4 * 4;
    for (int64_t i = int64_t(threadIdx.x) * 4; i < vector_end; i += int64_t(blockDim.x) * 4) {
      float4 p = load4(chunk.main_param + i);
      float4 m = load4(chunk.exp_avg + i);
      float4 v = load4(chunk.exp_avg_sq + i);
      const float4 g = load4(chunk.grad + i);
      adamw_element(p.x, m.x, v.x, g.x, scalars);
      adamw_element(p.y, m.y, v.y, g.y, scalars);
      adamw_element(p.z, m.z, v.z, g.z, scalars);
      adamw_element(p.w, m.w, v.w, g.w, scalars);
      store4(chunk.main_param + i, p);
      store4(chunk.exp_avg + i, m);
      store4(chunk.exp_avg_sq + i, v);
      if (has_model) store4(chunk.model_param + i, p);
    }
  }
  for (int64_t i = vector_end + threadIdx.x; i < chunk.numel; i += blockDim.x) {
    float p = chunk.main_param[i], m = load1(chunk.exp_avg + i), v = load1(chunk.exp_avg_sq + i);
    adamw_element(p, m, v, chunk.grad[i], scalars);
    chunk.main_param[i] = p;
    store1(chunk.exp_avg + i, m);
    store1(chunk.exp_avg_sq + i, v);
    if (has_model) store1(chunk.model_param + i, p);
  }
}

}  // namespace

template <typename ExpAvg, typename ExpAvgSq>
std::vector<AdamTensorOf<ExpAvg, ExpAvgSq>> split_into_adam_chunks(
    const std::vector<AdamTensorOf<ExpAvg, ExpAvgSq>>& tensors) {
  std::vector<AdamTensorOf<ExpAvg, ExpAvgSq>> chunks;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const AdamTensorOf<ExpAvg, ExpAvgSq>& tensor = tensors[t];
    if (tensor.numel < 0)
      throw Error("split_into_adam_chunks: tensor " + std::to_string(t) + " has numel " +
                  std::to_string(tensor.numel) + "; sizes must be >= 0");
    if (tensor.numel > 0 && (!tensor.main_param || !tensor.exp_avg || !tensor.exp_avg_sq || !tensor.grad))
      throw Error("split_into_adam_chunks: tensor " + std::to_string(t) +
                  " lacks a main_param, exp_avg, exp_avg_sq or grad pointer; only model_param may be null");
    for (int64_t start = 0; start < tensor.numel; start += kAdamChunkElements) {
      AdamTensorOf<ExpAvg, ExpAvgSq> chunk;
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

template <typename ExpAvg, typename ExpAvgSq>
void adamw_step(const AdamTensorOf<ExpAvg, ExpAvgSq>* chunks, std::int64_t num_chunks, std::int64_t step,
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
                            float(1.0 - std::pow(hyperparams.beta2, step_d)),
                            float(hyperparams.grad_scale)};
  adamw_chunk_kernel<<<unsigned(num_chunks), kThreads, 0, stream>>>(chunks, scalars);
  MOEBENCH_CUDA_CHECK(cudaGetLastError());
}

// One instantiation per moment storage: m and v each in fp32 or bf16.
using Bf16 = __nv_bfloat16;
template <typename ExpAvg, typename ExpAvgSq>
using Chunks = std::vector<AdamTensorOf<ExpAvg, ExpAvgSq>>;
// clang-format off
template Chunks<float, float> split_into_adam_chunks(const Chunks<float, float>&);
template Chunks<Bf16, float> split_into_adam_chunks(const Chunks<Bf16, float>&);
template Chunks<float, Bf16> split_into_adam_chunks(const Chunks<float, Bf16>&);
template Chunks<Bf16, Bf16> split_into_adam_chunks(const Chunks<Bf16, Bf16>&);
template void adamw_step(const AdamTensorOf<float, float>*, int64_t, int64_t, const AdamHyperparams&, cudaStream_t);
template void adamw_step(const AdamTensorOf<Bf16, float>*, int64_t, int64_t, const AdamHyperparams&, cudaStream_t);
template void adamw_step(const AdamTensorOf<float, Bf16>*, int64_t, int64_t, const AdamHyperparams&, cudaStream_t);
template void adamw_step(const AdamTensorOf<Bf16, Bf16>*, int64_t, int64_t, const AdamHyperparams&, cudaStream_t);
// clang-format on

}  // namespace moebench::ops::cuda
