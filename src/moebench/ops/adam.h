#pragma once
// One Adam step with decoupled weight decay (AdamW), as Megatron's "adam"
// optimizer runs it through Apex/Transformer Engine FusedAdam:
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   p -= lr * (m / (1 - beta1^step) / (sqrt(v / (1 - beta2^step)) + eps) + weight_decay * p)
// The decay uses p from before the step. Main params are fp32 in training;
// each moment is stored in fp32 or, with Megatron's precision-aware optimizer
// (--exp-avg-dtype / --exp-avg-sq-dtype bf16), in bf16: the step widens it,
// computes in fp32 and rounds the new moment to the nearest bf16 (ties to
// even) on write. The reference runs in T (float or double).
#include <cstdint>
#include <vector>

#include "moebench/core/dtype.h"
#include "moebench/core/tensor.h"

namespace moebench::ops {

// Megatron's flag defaults; weight_decay is per parameter group (the caller
// passes 0 for norms and biases when it excludes them from decay).
struct AdamHyperparams {
  double lr = 0.0;            // --lr, after the schedule
  double beta1 = 0.9;         // --adam-beta1
  double beta2 = 0.999;       // --adam-beta2
  double eps = 1e-8;          // --adam-eps, added to sqrt(v_hat)
  double weight_decay = 0.0;  // --weight-decay for this group
  // Multiplies each gradient as the step reads it (g above is grad_scale x
  // grad): the clipping factor, which Megatron applies to the gradients in a
  // pass of their own before the step; folded in, the gradients are read once.
  double grad_scale = 1.0;
};

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// Updates param[N], exp_avg[N] (m) and exp_avg_sq[N] (v) in place from
// grad[N]; `step` counts from 1 (the first update). The arithmetic is in T
// (float or double); each moment is stored in T or in bfloat16, read as T and
// rounded to the nearest bf16 (ties to even, directly from T) when written.
// Instantiated for T in {float, double} and each moment in {T, bfloat16}.
template <typename T, typename ExpAvg, typename ExpAvgSq>
void adamw_step(T* param, ExpAvg* exp_avg, ExpAvgSq* exp_avg_sq, const T* grad, std::int64_t n,
                std::int64_t step, const AdamHyperparams& hyperparams);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <vector>

namespace moebench::ops::cuda {

// One parameter's optimizer arrays on the device, each of numel elements; or,
// after split_into_adam_chunks, one piece of them (pointers offset to the piece).
// The moments are stored as ExpAvg and ExpAvgSq, each float or __nv_bfloat16.
template <typename ExpAvg, typename ExpAvgSq>
struct AdamTensorOf {
  float* main_param = nullptr;           // fp32 main weights, updated in place
  ExpAvg* exp_avg = nullptr;             // m, updated in place
  ExpAvgSq* exp_avg_sq = nullptr;        // v, updated in place
  const float* grad = nullptr;           // fp32 main gradient
  __nv_bfloat16* model_param = nullptr;  // bf16 compute weights, written from the new main
                                         // weights; null when there is no bf16 copy
  std::int64_t numel = 0;
};
using AdamTensor = AdamTensorOf<float, float>;  // Megatron's default: fp32 moments

// Elements one thread block updates: what split_into_adam_chunks cuts to.
constexpr std::int64_t kAdamChunkElements = 65536;

// The tensors cut into pieces of at most kAdamChunkElements (empty tensors
// dropped). Build this once for a parameter group, copy it to the device, and
// pass it to every adamw_step: the pointers do not change between steps.
// Instantiated, as adamw_step, for each moment in {float, __nv_bfloat16}.
template <typename ExpAvg, typename ExpAvgSq>
std::vector<AdamTensorOf<ExpAvg, ExpAvgSq>> split_into_adam_chunks(
    const std::vector<AdamTensorOf<ExpAvg, ExpAvgSq>>& tensors);

// One AdamW step (the formula at the top of this file, fp32, step counting
// from 1) over every chunk of `chunks`, a device array of num_chunks pieces
// from split_into_adam_chunks, in one launch. One hyperparameter set per call:
// run one call per parameter group (e.g. with and without weight decay).
template <typename ExpAvg, typename ExpAvgSq>
void adamw_step(const AdamTensorOf<ExpAvg, ExpAvgSq>* chunks, std::int64_t num_chunks, std::int64_t step,
                const AdamHyperparams& hyperparams, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// One parameter on the CPU: param and grad f32 (or f64) of one size, each
// moment of param's dtype or bf16.
void adamw_step(Tensor& param, Tensor& exp_avg, Tensor& exp_avg_sq, const Tensor& grad, std::int64_t step,
                const AdamHyperparams& hyperparams);

// One parameter's optimizer state on a CUDA device, for the multi-tensor step.
struct AdamTensors {
  Tensor main_param;   // f32, updated
  Tensor exp_avg;      // f32 or bf16 (the same for the whole group), updated
  Tensor exp_avg_sq;   // f32 or bf16 (the same for the whole group), updated
  Tensor grad;         // f32
  Tensor model_param;  // bf16 compute copy written from the new main weights, or undefined
};

// A parameter group cut into chunks once (cuda::split_into_adam_chunks) and
// kept on the device, so each step is one launch.
class MultiTensorAdam {
 public:
  explicit MultiTensorAdam(const std::vector<AdamTensors>& tensors);
  void step(std::int64_t step, const AdamHyperparams& hyperparams) const;
  bool empty() const { return num_chunks_ == 0; }

 private:
  Tensor chunks_;  // the device array of cuda::AdamTensorOf<m, v>, as raw bytes
  std::int64_t num_chunks_ = 0;
  DType exp_avg_dtype_ = DType::F32;  // the group's moment dtypes: which AdamTensorOf chunks_ holds
  DType exp_avg_sq_dtype_ = DType::F32;
};

}  // namespace moebench::ops
