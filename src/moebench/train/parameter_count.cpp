#include "moebench/train/parameter_count.h"

namespace moebench::train {
namespace {

double attention_parameters(const config::ModelConfig& m) {
  const double h = m.hidden_size, heads = m.num_attention_heads;
  if (m.multi_latent_attention) {
    const auto& mla = m.mla;
    const double qk = mla.qk_head_dim + mla.qk_pos_emb_head_dim;
    const double q = mla.q_lora_rank > 0 ? h * mla.q_lora_rank + mla.q_lora_rank + mla.q_lora_rank * heads * qk
                                         : h * heads * qk;
    const double kv = h * (mla.kv_lora_rank + mla.qk_pos_emb_head_dim) + mla.kv_lora_rank +
                      mla.kv_lora_rank * heads * (mla.qk_head_dim + mla.v_head_dim);
    return h + q + kv + heads * mla.v_head_dim * h;
  }
  const double q = static_cast<double>(m.kv_channels) * m.num_attention_heads;
  const double kv = static_cast<double>(m.kv_channels) * m.num_query_groups;
  const double bias = m.add_qkv_bias ? q + 2 * kv : 0;
  const double qk_norm = m.qk_layernorm ? 2.0 * m.kv_channels : 0;
  return h + h * (q + 2 * kv) + bias + qk_norm + q * h;
}

double swiglu_parameters(double hidden, double ffn) { return 3.0 * hidden * ffn; }

ParameterCount mlp_parameters(const config::ModelConfig& m, bool moe_layer, int experts_counted) {
  const double h = m.hidden_size;
  ParameterCount count;
  count.dense = h;  // the pre-MLP norm
  if (!moe_layer) {
    count.dense += swiglu_parameters(h, m.ffn_hidden_size);
    return count;
  }
  count.dense += h * m.moe.num_experts;  // router
  if (m.moe.shared_expert_size > 0)
    count.dense += swiglu_parameters(h, m.moe.shared_expert_size) + (m.moe.shared_expert_gate ? h : 0);
  count.experts = experts_counted * swiglu_parameters(h, m.moe.ffn_hidden_size);
  return count;
}

ParameterCount count(const config::ModelConfig& m, int experts_counted) {
  const double h = m.hidden_size;
  ParameterCount total;
  for (int layer = 0; layer < m.num_layers; ++layer) {
    ParameterCount mlp = mlp_parameters(m, m.moe.is_moe_layer[layer], experts_counted);
    total.dense += attention_parameters(m) + mlp.dense;
    total.experts += mlp.experts;
  }
  total.dense += h;  // final norm
  total.embedding = h * m.padded_vocab_size;
  total.output = h * m.padded_vocab_size;
  // Each multi-token-prediction layer: two norms, a 2h -> h projection and a
  // transformer layer shaped like the last one; it shares embedding and output.
  for (int i = 0; i < m.mtp_num_layers; ++i) {
    ParameterCount mlp = mlp_parameters(m, m.moe.is_moe_layer.back(), experts_counted);
    total.dense += 3 * h + 2 * h * h + attention_parameters(m) + mlp.dense;
    total.experts += mlp.experts;
  }
  return total;
}

}  // namespace

ParameterCount layer_parameters(const config::ModelConfig& m, int layer) {
  ParameterCount result = mlp_parameters(m, m.moe.is_moe_layer[layer], m.moe.num_experts);
  result.dense += attention_parameters(m);
  return result;
}

ParameterCount model_parameters(const config::ModelConfig& m) { return count(m, m.moe.num_experts); }
ParameterCount active_parameters(const config::ModelConfig& m) { return count(m, m.moe.topk); }

std::vector<ParameterCount> parameters_per_stage(const config::ModelConfig& m, const config::ParallelConfig& p) {
  const std::vector<int> stage_layers = p.layers_per_stage(m.num_layers);
  std::vector<ParameterCount> stages(stage_layers.size());
  int layer = 0;
  for (size_t stage = 0; stage < stages.size(); ++stage) {
    for (int i = 0; i < stage_layers[stage]; ++i, ++layer) {
      ParameterCount l = layer_parameters(m, layer);
      stages[stage].dense += l.dense / p.tensor;
      stages[stage].experts += l.experts / (p.expert * p.expert_tensor);
    }
  }
  const ParameterCount whole = model_parameters(m);
  stages.front().embedding = whole.embedding / p.tensor;
  ParameterCount& last = stages.back();
  last.output = whole.output / p.tensor;
  // Final norm and multi-token-prediction layers sit on the last stage.
  double layers_dense = 0, layers_experts = 0;
  for (int l = 0; l < m.num_layers; ++l) {
    ParameterCount c = layer_parameters(m, l);
    layers_dense += c.dense;
    layers_experts += c.experts;
  }
  last.dense += (whole.dense - layers_dense) / p.tensor;
  last.experts += (whole.experts - layers_experts) / (p.expert * p.expert_tensor);
  return stages;
}

}  // namespace moebench::train
