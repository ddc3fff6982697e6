#include "moebench/config/model_config_flags.h"

#include <cstdio>
#include <string>

namespace moebench::config {
namespace {

// Shortest text that reads back as the same double.
std::string exact(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

std::string layer_pattern(const std::vector<bool>& is_moe_layer) {
  std::string text = "[";
  for (size_t l = 0; l < is_moe_layer.size(); ++l) text += (l ? "," : "") + std::string(is_moe_layer[l] ? "1" : "0");
  return text + "]";
}

}  // namespace

FlagMap model_config_flags(const ModelConfig& m) {
  FlagMap flags;
  auto set = [&flags](const char* name, const std::string& value) { flags.set(name, {value}); };
  auto number = [&set](const char* name, long long value) { set(name, std::to_string(value)); };
  number("--num-layers", m.num_layers);
  number("--hidden-size", m.hidden_size);
  number("--ffn-hidden-size", m.ffn_hidden_size);
  number("--num-attention-heads", m.num_attention_heads);
  if (m.num_query_groups != m.num_attention_heads) {
    flags.set_bool("--group-query-attention", true);
    number("--num-query-groups", m.num_query_groups);
  }
  number("--kv-channels", m.kv_channels);
  number("--seq-length", m.seq_length);
  number("--max-position-embeddings", m.seq_length);
  number("--vocab-size", m.vocab_size);
  // Padding to a multiple of the padded size itself reproduces it exactly.
  number("--make-vocab-size-divisible-by", m.padded_vocab_size == m.vocab_size ? 1 : m.padded_vocab_size);
  set("--norm-epsilon", exact(m.norm_epsilon));
  flags.set_bool("--add-qkv-bias", m.add_qkv_bias);
  flags.set_bool("--qk-layernorm", m.qk_layernorm);
  set("--init-method-std", exact(m.init_method_std));
  number("--mtp-num-layers", m.mtp_num_layers);
  set("--mtp-loss-scaling-factor", exact(m.mtp_loss_scaling_factor));
  flags.set_bool("--swiglu", true);
  flags.set_bool("--untie-embeddings-and-output-weights", true);
  flags.set_bool("--disable-bias-linear", true);

  set("--rotary-base", exact(m.rope.base));
  set("--rotary-percent", exact(m.rope.percent));
  set("--rope-type", m.rope.yarn ? "yarn" : "rope");
  set("--rotary-scaling-factor", exact(m.rope.scaling_factor));
  number("--original-max-position-embeddings", m.rope.original_max_positions);
  set("--beta-fast", exact(m.rope.beta_fast));
  set("--beta-slow", exact(m.rope.beta_slow));
  set("--mscale", exact(m.rope.mscale));
  set("--mscale-all-dim", exact(m.rope.mscale_all_dim));
  if (m.multi_latent_attention) {
    flags.set_bool("--multi-latent-attention", true);
    number("--q-lora-rank", m.mla.q_lora_rank);
    number("--kv-lora-rank", m.mla.kv_lora_rank);
    number("--qk-head-dim", m.mla.qk_head_dim);
    number("--qk-pos-emb-head-dim", m.mla.qk_pos_emb_head_dim);
    number("--v-head-dim", m.mla.v_head_dim);
  }

  const MoeConfig& moe = m.moe;
  if (moe.num_experts == 0) return flags;
  number("--num-experts", moe.num_experts);
  number("--moe-ffn-hidden-size", moe.ffn_hidden_size);
  number("--moe-router-topk", moe.topk);
  number("--moe-shared-expert-intermediate-size", moe.shared_expert_size);
  flags.set_bool("--moe-shared-expert-gate", moe.shared_expert_gate);
  set("--moe-layer-freq", layer_pattern(moe.is_moe_layer));
  set("--moe-router-score-function", moe.score_function == ScoreFunction::Sigmoid ? "sigmoid" : "softmax");
  flags.set_bool("--moe-router-pre-softmax", moe.pre_softmax);
  flags.set_bool("--moe-router-enable-expert-bias", moe.expert_bias);
  set("--moe-router-bias-update-rate", exact(moe.bias_update_rate));
  number("--moe-router-num-groups", moe.num_groups);
  number("--moe-router-group-topk", moe.group_topk);
  set("--moe-router-topk-scaling-factor", exact(moe.topk_scaling_factor));
  set("--moe-router-load-balancing-type", moe.load_balancing == LoadBalancing::AuxLoss      ? "aux_loss"
                                          : moe.load_balancing == LoadBalancing::SeqAuxLoss ? "seq_aux_loss"
                                                                                            : "none");
  set("--moe-aux-loss-coeff", exact(moe.aux_loss_coeff));
  set("--moe-z-loss-coeff", exact(moe.z_loss_coeff));
  set("--moe-expert-capacity-factor", exact(moe.capacity_factor));
  flags.set_bool("--moe-router-force-load-balancing", moe.force_load_balancing);
  set("--moe-token-dispatcher-type", dispatcher_name(moe.dispatcher));
  flags.set_bool("--moe-grouped-gemm", moe.grouped_gemm);
  flags.set_bool("--moe-permute-fusion", moe.permute_fusion);
  // moebench's own flag, named only where it departs from Megatron's behaviour.
  if (moe.wgrad_microbatches != 1) number("--moe-wgrad-microbatches", moe.wgrad_microbatches);
  return flags;
}

}  // namespace moebench::config
