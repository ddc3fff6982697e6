#pragma once
// Megatron-Core's TopKRouter, in fp32: router logits = inp @ weight^T, then
//   softmax, pre_softmax=false  top-k of the logits, softmax over the k (Mixtral,
//                               Qwen3-MoE: = HF softmax over all + renormalise)
//   softmax, pre_softmax=true   softmax over all experts, top-k of the scores
//                               (Qwen2-MoE, DeepSeek-V2: no renormalisation)
//   sigmoid                     sigmoid scores; top-k chosen on scores + expert_bias
//                               when enabled, weights gathered from the scores and,
//                               for k > 1, renormalised (DeepSeek-V3)
// with group-limited top-k when num_groups > 0, the weights multiplied by
// topk_scaling_factor, then capacity dropping ("probs" policy) when
// capacity_factor > 0. --moe-router-force-load-balancing replaces the logits
// by random normal ones (no gradient reaches the router weight).
//
// Auxiliary losses, computed in forward and differentiated in backward:
//   aux_loss      coeff * E/(k*N^2) * sum_e (sum_t p_te) * count_e
//   seq_aux_loss  the same per sequence (N -> S), averaged over the batch
//   z-loss        z_coeff * mean_t logsumexp(logits_t)^2
// where p are softmax scores (sigmoid: sigmoid scores normalised per token)
// and count_e the tokens whose plain top-k of those scores includes e.
//
// Under sequence parallelism each tp rank routes its own token rows (a
// contiguous chunk of the B*S, see dist/tensor_parallel_regions.h); the
// expert counts of the aux losses are summed over the tp ranks, each rank's
// aux + z loss is its tokens' share (its gradient), and the reported loss is
// the sum of the shares, as one rank would compute it.
//
// Parameters and buffers under `prefix` (decoder.layers.N.mlp.router):
//   weight       [E, h]   trained
//   expert_bias  [E]      buffer (not a Parameter): moved by update_expert_bias
#include <cstdint>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/dist/communicator.h"
#include "moebench/dist/tensor_parallel_regions.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/parameter.h"
#include "moebench/ops/router.h"

namespace moebench::model {

struct Routing {
  Tensor routing_map;  // int64 [N, k]: expert of each (token, slot), -1 when dropped
  Tensor probs;        // f32 [N, k]: weight of each slot, 0 when dropped
};

class TopKRouter {
 public:
  struct Context {
    int64_t batch = 0, seq = 0;
    Tensor inp;          // [N, h]
    Tensor scores;       // [N, E]: softmax or sigmoid of the logits (unused for softmax-after-topk)
    Tensor topk_logits;  // [N, k]: selected logits (softmax-after-topk only)
    Tensor topk_probs;   // [N, k]: weights before scaling and dropping
    Tensor indices;      // int64 [N, k]: selected experts before dropping
    Tensor aux_dlogits;  // [N, E]: d(aux + z loss) / d logits; undefined without them
    // The GPU path (ops/router.h's fused kernels) keeps instead:
    Tensor logits;                              // f32 [N, E]
    ops::RouterStatisticTensors statistics;     // aux-loss statistics on the device
    Tensor aux_loss;                            // f32 [1] on the device: this layer's aux + z loss,
                                                // undefined without them; GPTModel reads it
  };

  TopKRouter(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
             const ModelConventions& conventions, const dist::TensorParallelRegions& tp = {});

  // inp [B*S, h] (token b*S + s). Adds this layer's aux + z losses (already
  // multiplied by their coefficients) to `aux_loss`.
  Routing forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                  double& aux_loss);
  // dprobs [N, k] -> dinp [N, h]; the aux-loss gradient enters scaled by loss_scale.
  Tensor backward(const Tensor& dprobs, const Context& context, double loss_scale);
  // As backward, but adds the input gradient to dinp [N, h] (the MoE layer's
  // input gradient from the experts): on CUDA in the GEMM, with beta = 1.
  void backward_accumulate(Tensor& dinp, const Tensor& dprobs, const Context& context, double loss_scale);

  // expert_bias += rate * sign(mean count - count_e) over the tokens routed since the
  // last update on every rank of `token_count_group` (collective over it when
  // the bias is on), then the counts restart (Megatron's get_updated_expert_bias).
  void update_expert_bias(dist::Communicator& token_count_group);
  std::string expert_bias_name() const { return prefix_ + ".expert_bias"; }

  Parameter weight;                // [E, h]
  Tensor expert_bias;              // [E]; zeros, used only with sigmoid + --moe-router-enable-expert-bias
  Tensor local_tokens_per_expert;  // f32 [E]: routed (kept) slots since the last bias update

 private:
  Tensor compute_logits(const Tensor& inp);
  // The same routing through the fused device kernels (ops::router_*), for a CUDA inp.
  Routing forward_on_device(const Tensor& inp, int64_t batch, int64_t seq, Context& context);
  // d(loss) / d logits [N, E] in f32, on the host or through ops::router_backward.
  Tensor logits_gradient(const Tensor& dprobs, const Context& context, double loss_scale) const;
  Tensor logits_gradient_on_device(const Tensor& dprobs, const Context& context, double loss_scale) const;
  ops::RouterConfig router_config() const;
  int64_t tokens_per_sequence(int64_t batch, int64_t seq) const;
  void select_topk(const Tensor& logits, Context& context) const;
  double auxiliary_losses(const Tensor& logits, Context& context) const;

  config::MoeConfig moe_;
  dist::TensorParallelRegions tp_;
  ops::GroupScore group_score_;
  std::string prefix_;
  uint64_t seed_;
  uint64_t forward_calls_ = 0;  // advances the random logits of force load balancing
};

}  // namespace moebench::model
