#pragma once
// The GPT model of Megatron-Core: embedding, transformer layers (attention
// GQA or MLA; MLP dense or MoE), final RMSNorm, untied output layer and
// cross-entropy. Explicit forward and backward, no autograd graph.
#include <cstdint>
#include <memory>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/parameter.h"

namespace moebench::model {

struct ForwardOutput {
  double lm_loss = 0;         // mean token cross-entropy (loss-mask weighted)
  double aux_loss = 0;        // load-balancing + z-loss terms, already scaled by their coefficients
  Tensor logits;              // [B, S, padded vocab] float32 when requested, else undefined
};

class GPTModel {
 public:
  // Parameters initialised as Megatron does (normal(0, init-method-std); output
  // projections scaled by 1/sqrt(2 x num_layers); norms 1), from `seed` and each
  // parameter's name, so the values do not depend on device or rank count.
  GPTModel(const config::ModelConfig& config, uint64_t seed);
  // The same, computing as `conventions` say where HF and Megatron differ.
  GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions);
  ~GPTModel();
  GPTModel(GPTModel&&) noexcept;
  GPTModel& operator=(GPTModel&&) noexcept;

  // input_ids int64 [B, S]; labels int64 [B, S] (may be undefined: then no loss);
  // loss_mask float32 [B, S] (may be undefined: all ones). Keeps what backward needs.
  ForwardOutput forward(const Tensor& input_ids, const Tensor& labels, const Tensor& loss_mask,
                        bool keep_logits = false);
  // Backpropagates d(lm_loss + aux_loss) scaled by `loss_scale` (e.g. 1/num_microbatches),
  // accumulating into every parameter's grad.
  void backward(double loss_scale);

  std::vector<Parameter*> parameters();
  Parameter& parameter(const std::string& name);  // throws Error naming the unknown parameter
  // Non-trained state that checkpoints keep (router expert biases).
  std::vector<Buffer> buffers();
  void zero_grad();
  // Aux-loss-free routing: after the optimizer step, move each MoE layer's
  // expert bias by its update rate towards balanced load (no-op otherwise),
  // counting the tokens routed on every rank of `token_count_group` (tp_dp_cp).
  void update_expert_bias(dist::Communicator& token_count_group);

  const config::ModelConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moebench::model
