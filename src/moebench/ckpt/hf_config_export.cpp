#include "moebench/ckpt/hf_config_export.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

using nlohmann::json;

// Throws, naming the setting, when a model cannot be written as `model_type`.
void require(bool holds, const std::string& model_type, const std::string& what) {
  if (!holds)
    throw Error("cannot write a Hugging Face " + model_type + " config: " + what +
                "; export a model whose architecture a hub model computes");
}

// How the model ranks groups under group-limited routing: its conventions,
// else Megatron's rule (the sum of each group's top topk / group_topk scores).
std::optional<ops::GroupScore> group_score_of(const config::MoeConfig& moe,
                                              const model::ModelConventions& conventions) {
  if (conventions.group_score) return conventions.group_score;
  const int summed = moe.group_topk > 0 ? moe.topk / moe.group_topk : 0;
  if (summed == 1) return ops::GroupScore::kMax;
  if (summed == 2) return ops::GroupScore::kTop2Sum;
  return std::nullopt;
}

const char* torch_dtype(DType dtype) {
  switch (dtype) {
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::F64: return "float64";
    default: return "float32";
  }
}

json rope_scaling(const config::RopeConfig& rope) {
  if (!rope.yarn) return nullptr;
  return {{"type", "yarn"},
          {"rope_type", "yarn"},
          {"factor", rope.scaling_factor},
          {"original_max_position_embeddings", rope.original_max_positions},
          {"beta_fast", rope.beta_fast},
          {"beta_slow", rope.beta_slow},
          {"mscale", rope.mscale},
          {"mscale_all_dim", rope.mscale_all_dim}};
}

std::vector<int> dense_layers(const config::ModelConfig& m) {
  std::vector<int> dense;
  for (int l = 0; l < m.num_layers; ++l)
    if (!m.moe.is_moe_layer[size_t(l)]) dense.push_back(l);
  return dense;
}

// DeepSeek's layer pattern: MoE where l >= first_k_dense_replace and
// l % moe_layer_freq == 0.
void write_deepseek_layer_pattern(const config::ModelConfig& m, const std::string& type, json& hub) {
  int first = 0;
  while (first < m.num_layers && !m.moe.is_moe_layer[size_t(first)]) ++first;
  for (int frequency = 1; frequency <= m.num_layers; ++frequency) {
    bool matches = true;
    for (int l = 0; l < m.num_layers; ++l)
      matches = matches && m.moe.is_moe_layer[size_t(l)] == (l >= first && l % frequency == 0);
    if (matches) {
      hub["first_k_dense_replace"] = first;
      hub["moe_layer_freq"] = frequency;
      return;
    }
  }
  require(false, type, "the MoE layers (--moe-layer-freq) are not first_k_dense_replace dense layers followed by "
                       "every moe_layer_freq-th layer");
}

void write_deepseek(const config::ModelConfig& m, const model::ModelConventions& conventions, json& hub) {
  const config::MoeConfig& moe = m.moe;
  const bool v3 = moe.score_function == config::ScoreFunction::Sigmoid;
  const std::string type = v3 ? "deepseek_v3" : "deepseek_v2";
  require(v3 == moe.expert_bias, type,
          "sigmoid scores and the expert bias (--moe-router-enable-expert-bias) come together in DeepSeek-V3; "
          "this model has one without the other");
  require(!moe.shared_expert_gate, type, "DeepSeek's shared experts have no gate (--moe-shared-expert-gate)");
  require(moe.shared_expert_size % moe.ffn_hidden_size == 0, type,
          "--moe-shared-expert-intermediate-size " + std::to_string(moe.shared_expert_size) +
              " is not a whole number of experts of --moe-ffn-hidden-size " + std::to_string(moe.ffn_hidden_size));
  require(!m.add_qkv_bias, type, "multi-latent attention has no q/k/v bias (--add-qkv-bias)");
  require(m.qk_layernorm, type, "DeepSeek normalises the q and kv latents (--qk-layernorm)");
  require(m.rope.percent == 1.0, type, "--rotary-percent must be 1 (the rope head dimension is rotated whole)");
  hub["model_type"] = type;
  hub["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  hub["num_key_value_heads"] = m.num_attention_heads;
  hub["head_dim"] = m.mla.qk_pos_emb_head_dim;
  hub["q_lora_rank"] = m.mla.q_lora_rank > 0 ? json(m.mla.q_lora_rank) : json(nullptr);
  hub["kv_lora_rank"] = m.mla.kv_lora_rank;
  hub["qk_nope_head_dim"] = m.mla.qk_head_dim;
  hub["qk_rope_head_dim"] = m.mla.qk_pos_emb_head_dim;
  hub["qk_head_dim"] = m.mla.qk_head_dim + m.mla.qk_pos_emb_head_dim;
  hub["v_head_dim"] = m.mla.v_head_dim;
  hub["n_routed_experts"] = moe.num_experts;
  hub["moe_intermediate_size"] = moe.ffn_hidden_size;
  hub["n_shared_experts"] = moe.shared_expert_size / moe.ffn_hidden_size;
  hub["routed_scaling_factor"] = moe.topk_scaling_factor;
  hub["scoring_func"] = v3 ? "sigmoid" : "softmax";
  // Sigmoid scores are always normalised over the chosen experts; softmax
  // after the top-k equals renormalising the top-k softmax.
  hub["norm_topk_prob"] = v3 || !moe.pre_softmax;
  hub["aux_loss_alpha"] = moe.load_balancing == config::LoadBalancing::None ? 0.0 : moe.aux_loss_coeff;
  hub["seq_aux"] = true;
  write_deepseek_layer_pattern(m, type, hub);

  const bool grouped = moe.num_groups > 1;
  const ops::GroupScore hub_rule = v3 ? ops::GroupScore::kTop2Sum : ops::GroupScore::kMax;
  require(!grouped || group_score_of(moe, conventions) == hub_rule, type,
          "its group-limited routing ranks each group by " +
              std::string(hub_rule == ops::GroupScore::kMax ? "its largest score" : "the sum of its two largest") +
              ", this model by the sum of its top --moe-router-topk / --moe-router-group-topk = " +
              std::to_string(moe.topk) + " / " + std::to_string(moe.group_topk) + " scores");
  if (v3) {
    hub["topk_method"] = "noaux_tc";
    hub["n_group"] = grouped ? moe.num_groups : 1;
    hub["topk_group"] = grouped ? moe.group_topk : 1;
  } else {
    hub["topk_method"] = grouped ? "group_limited_greedy" : "greedy";
    hub["n_group"] = grouped ? json(moe.num_groups) : json(nullptr);
    hub["topk_group"] = grouped ? json(moe.group_topk) : json(nullptr);
  }
}

void write_qwen_or_mixtral(const config::ModelConfig& m, json& hub) {
  const config::MoeConfig& moe = m.moe;
  const std::string type = moe.shared_expert_gate ? "qwen2_moe" : m.qk_layernorm ? "qwen3_moe" : "mixtral";
  require(moe.score_function == config::ScoreFunction::Softmax && !moe.expert_bias, type,
          "sigmoid scores and the expert bias need multi-latent attention (DeepSeek-V3)");
  require(moe.num_groups <= 1, type, "group-limited routing (--moe-router-num-groups) needs DeepSeek");
  require(moe.topk_scaling_factor == 1.0, type, "--moe-router-topk-scaling-factor must be 1");
  require(moe.shared_expert_size == 0 || moe.shared_expert_gate, type,
          "a shared expert without a gate needs DeepSeek (or --moe-shared-expert-gate for Qwen2-MoE)");
  require(type != "qwen2_moe" || !m.qk_layernorm, type, "Qwen2-MoE has no q/k layernorm (--qk-layernorm)");
  require(m.rope.percent == 1.0 || type != "mixtral", type, "Mixtral rotates whole heads (--rotary-percent 1)");
  hub["model_type"] = type;
  hub["num_key_value_heads"] = m.num_query_groups;
  hub["head_dim"] = m.kv_channels;
  hub["router_aux_loss_coef"] = moe.aux_loss_coeff;
  hub["output_router_logits"] = false;
  if (m.rope.percent != 1.0) hub["partial_rotary_factor"] = m.rope.percent;
  if (type == "mixtral") {
    require(dense_layers(m).empty(), type, "every Mixtral layer is MoE (--moe-layer-freq 1)");
    require(!moe.pre_softmax, type, "Mixtral renormalises the top-k (no --moe-router-pre-softmax)");
    require(!m.add_qkv_bias, type, "Mixtral's attention has no bias (--add-qkv-bias)");
    hub["architectures"] = {"MixtralForCausalLM"};
    hub["num_local_experts"] = moe.num_experts;
    hub["intermediate_size"] = moe.ffn_hidden_size;
    return;
  }
  hub["architectures"] = {type == "qwen2_moe" ? "Qwen2MoeForCausalLM" : "Qwen3MoeForCausalLM"};
  hub["num_experts"] = moe.num_experts;
  hub["moe_intermediate_size"] = moe.ffn_hidden_size;
  hub["decoder_sparse_step"] = 1;
  hub["mlp_only_layers"] = dense_layers(m);
  hub["norm_topk_prob"] = !moe.pre_softmax;
  hub["use_sliding_window"] = false;
  if (type == "qwen2_moe") {
    hub["qkv_bias"] = m.add_qkv_bias;
    hub["shared_expert_intermediate_size"] = moe.shared_expert_size;
  } else {
    hub["attention_bias"] = m.add_qkv_bias;
  }
}

}  // namespace

std::string hf_config_json(const config::ModelConfig& m, const model::ModelConventions& conventions, DType weights,
                           int max_position_embeddings) {
  require(m.is_moe(), "MoE", "the model has no experts (--num-experts)");
  json hub = json::object();
  hub["num_hidden_layers"] = m.num_layers;
  hub["hidden_size"] = m.hidden_size;
  hub["intermediate_size"] = m.ffn_hidden_size;
  hub["num_attention_heads"] = m.num_attention_heads;
  hub["max_position_embeddings"] = max_position_embeddings;
  hub["vocab_size"] = m.padded_vocab_size;
  hub["rms_norm_eps"] = m.norm_epsilon;
  hub["num_experts_per_tok"] = m.moe.topk;
  hub["initializer_range"] = m.init_method_std;
  hub["tie_word_embeddings"] = false;
  hub["hidden_act"] = "silu";
  hub["attention_dropout"] = 0.0;
  hub["rope_theta"] = m.rope.base;
  hub["rope_scaling"] = rope_scaling(m.rope);
  hub["torch_dtype"] = torch_dtype(weights);
  hub["use_cache"] = true;
  if (m.multi_latent_attention) {
    write_deepseek(m, conventions, hub);
  } else {
    require(!m.rope.yarn, "hub", "YaRN RoPE (--rope-type yarn) is read for DeepSeek models only");
    write_qwen_or_mixtral(m, hub);
  }
  return hub.dump(2) + "\n";
}

}  // namespace moebench::ckpt
