#pragma once
// One pre-norm transformer layer of Megatron-Core:
//   h   = x + attention(RMSNorm(x))
//   out = h + mlp(RMSNorm(h))          (dense SwiGLU MLP or MoE layer)
//
// Norm weights take Megatron-Core's TE-spec names, which depend on what they
// feed (decoder.layers.N. prefix omitted):
//   GQA input norm   self_attention.linear_qkv.layer_norm_weight  (fused into linear_qkv)
//   MLA input norm   input_layernorm.weight
//   dense MLP norm   mlp.linear_fc1.layer_norm_weight             (fused into linear_fc1)
//   MoE norm         pre_mlp_layernorm.weight
#include <optional>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/model/attention/gqa_attention.h"
#include "moebench/model/attention/mla_attention.h"
#include "moebench/model/mlp.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/moe/moe_layer.h"
#include "moebench/model/rmsnorm.h"

namespace moebench::model {

class TransformerLayer {
 public:
  struct Context {
    RMSNorm::Context input_norm, pre_mlp_norm;
    GqaAttention::Context gqa;
    MlaAttention::Context mla;
    MLP::Context mlp;
    MoELayer::Context moe;
  };

  // `parallel_state` (may be null: one rank) gives the tp group (attention and
  // MLP tensor-parallel, sequence-parallel when config.sequence_parallel) and
  // the MoE layer's groups, see MoELayer. x and the output are then this
  // rank's token rows under SP.
  TransformerLayer(int layer_number, const config::ModelConfig& config, uint64_t seed,
                   const ModelConventions& conventions, const dist::ParallelState* parallel_state = nullptr);

  // x [B*S, h] -> [B*S, h]; MoE layers add their aux losses to aux_loss.
  Tensor forward(const Tensor& x, int64_t batch, int64_t seq, Context& context, double& aux_loss);
  Tensor backward(const Tensor& dout, const Context& context, double loss_scale);

  void collect(std::vector<Parameter*>& parameters);
  MoELayer* moe() { return moe_ ? &*moe_ : nullptr; }

 private:
  RMSNorm input_norm_;
  std::optional<GqaAttention> gqa_;
  std::optional<MlaAttention> mla_;
  RMSNorm pre_mlp_norm_;
  std::optional<MLP> mlp_;
  std::optional<MoELayer> moe_;
};

}  // namespace moebench::model
