#pragma once
// The MoE router after its GEMM: from fp32 logits[N, E] to each token's top-k
// experts and routing weights, the load-balancing statistics, and the way
// back (Megatron-Core's TopKRouter with --moe-permute-fusion's fused routing).
// model/moe/router.cpp holds the same semantics for the CPU engine:
//   softmax, pre_softmax=false  top-k of the logits, softmax over the k
//   softmax, pre_softmax=true   softmax over all experts, top-k of the scores
//   sigmoid                     top-k of sigmoid scores (+ expert_bias when given,
//                               for the choice only); weights = the unbiased
//                               scores, renormalised to sum 1 when k > 1
// optionally group-limited (ops/topk.h), then every weight times scaling_factor.
// A token's k results are sorted by selection score, largest first; ties go to
// the lower expert index.
//
// Load balancing, with tokens t = b * L + s (L = tokens_per_sequence: the
// whole batch for aux_loss, the sequence length for seq_aux_loss, S = N / L):
//   aux scores p[t, e]    softmax of the logits; for sigmoid, sigmoid scores
//                         divided by their sum over all experts when k > 1
//   aux_counts[b, e]      tokens of sequence b whose plain top-k of p holds e
//   aux_score_sums[b, e]  sum over the tokens of sequence b of p[t, e]
//   aux loss              aux_loss_coeff * E / (k * L^2 * S) * sum_b,e counts * sums
//   z_loss_sum            sum over tokens of logsumexp(logits[t])^2
//   z loss                z_loss_coeff * z_loss_sum / N
// Forward accumulates the statistics (+=; the caller zeroes them); backward
// writes dlogits (=), adding the gradient of both losses times loss_scale.
#include <cstdint>

#include "moebench/core/tensor.h"

#include "moebench/ops/topk.h"

namespace moebench::ops {

enum class RouterScoreFunction { kSoftmax, kSigmoid };

// The routing knobs (Megatron's --moe-router-* flags).
struct RouterConfig {
  std::int64_t num_experts = 0;  // E
  std::int64_t topk = 0;         // k
  RouterScoreFunction score_function = RouterScoreFunction::kSoftmax;
  bool pre_softmax = false;      // softmax only: top-k of softmax(all) instead of softmax(top-k)
  std::int64_t num_groups = 0;   // 0: plain top-k; else group-limited top-k over this many groups
  std::int64_t group_topk = 0;   // groups kept when num_groups > 0
  GroupScore group_score = GroupScore::kMax;
  float scaling_factor = 1.0f;   // --moe-router-topk-scaling-factor
  float aux_loss_coeff = 0.0f;   // 0: no load-balancing statistics or loss
  float z_loss_coeff = 0.0f;     // 0: no z-loss
};

// Where the forward accumulates (+=) its statistics; each is needed exactly
// when its coefficient in RouterConfig is > 0 (and is otherwise ignored).
struct RouterStatistics {
  std::int32_t* aux_counts = nullptr;  // [S, E]
  float* aux_score_sums = nullptr;     // [S, E]
  float* z_loss_sum = nullptr;         // [1]
};

// Throws moebench::Error naming the bad value when `config`, the token counts
// or (for the forward) `statistics` do not fit together; `op` leads the message.
void check_router_arguments(const char* op, std::int64_t tokens, std::int64_t tokens_per_sequence,
                            const RouterConfig& config, const RouterStatistics* statistics);

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// indices[N, k] and probs[N, k] (weights times scaling_factor) from logits[N, E];
// expert_bias[E] (sigmoid only) or nullptr.
void router_forward(std::int64_t* indices, float* probs, const RouterStatistics& statistics,
                    const float* logits, const float* expert_bias, std::int64_t tokens,
                    std::int64_t tokens_per_sequence, const RouterConfig& config);

// dlogits[N, E] = d(probs)/d(logits)^T dprobs + loss_scale * d(aux + z loss)/d(logits),
// with indices[N, k] and aux_counts[S, E] from the forward.
void router_backward(float* dlogits, const float* dprobs, const float* logits,
                     const std::int64_t* indices, const std::int32_t* aux_counts,
                     std::int64_t tokens, std::int64_t tokens_per_sequence,
                     const RouterConfig& config, float loss_scale);

// The aux + z loss (already times their coefficients) from the forward's statistics.
double router_auxiliary_loss(const RouterStatistics& statistics, std::int64_t tokens,
                             std::int64_t tokens_per_sequence, const RouterConfig& config);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

// As cpu::router_forward, all pointers on the device; E <= 256, k <= 8,
// num_groups <= 8. Indices match the CPU exactly unless selection scores tie
// within rounding; probs agree to ~1e-6 relative.
void router_forward(std::int64_t* indices, float* probs, const RouterStatistics& statistics,
                    const float* logits, const float* expert_bias, std::int64_t tokens,
                    std::int64_t tokens_per_sequence, const RouterConfig& config,
                    cudaStream_t stream);

// As cpu::router_backward (aux_counts may be null when aux_loss_coeff is 0).
void router_backward(float* dlogits, const float* dprobs, const float* logits,
                     const std::int64_t* indices, const std::int32_t* aux_counts,
                     std::int64_t tokens, std::int64_t tokens_per_sequence,
                     const RouterConfig& config, float loss_scale, cudaStream_t stream);

// loss[1] (device, written) = cpu::router_auxiliary_loss of the device statistics.
void router_auxiliary_loss(float* loss, const RouterStatistics& statistics, std::int64_t tokens,
                           std::int64_t tokens_per_sequence, const RouterConfig& config,
                           cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// Everything is fp32 (the router runs in fp32 on both devices).
struct RouterStatisticTensors {
  Tensor aux_counts;      // i32 [S, E], when aux_loss_coeff > 0
  Tensor aux_score_sums;  // f32 [S, E], when aux_loss_coeff > 0
  Tensor z_loss_sum;      // f32 [1], when z_loss_coeff > 0
};
// Zeroed statistics for `sequences` = tokens / tokens_per_sequence on `device`.
RouterStatisticTensors zero_router_statistics(const RouterConfig& config, std::int64_t sequences, Device device);
// indices i64 [N, k], probs f32 [N, k] from logits f32 [N, E]; expert_bias f32 [E] or undefined.
void router_forward(Tensor& indices, Tensor& probs, RouterStatisticTensors& statistics, const Tensor& logits,
                    const Tensor& expert_bias, std::int64_t tokens_per_sequence, const RouterConfig& config);
void router_backward(Tensor& dlogits, const Tensor& dprobs, const Tensor& logits, const Tensor& indices,
                     const Tensor& aux_counts, std::int64_t tokens_per_sequence, const RouterConfig& config,
                     float loss_scale);
// loss [1] (f32; f64 allowed on the CPU) = the aux + z loss of the statistics.
void router_auxiliary_loss(Tensor& loss, const RouterStatisticTensors& statistics, std::int64_t tokens,
                           std::int64_t tokens_per_sequence, const RouterConfig& config);

}  // namespace moebench::ops
