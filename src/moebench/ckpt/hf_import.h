#pragma once
// Hugging Face hub checkpoints (Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V2 /
// V2-Lite / V3) into a GPTModel, and our tensors back into hub layout.
//
// Names and layouts (hub -> ours, model.layers.L -> decoder.layers.L):
//   model.embed_tokens / lm_head / model.norm -> embedding.word_embeddings /
//       output_layer / decoder.final_layernorm
//   self_attn.{q,k,v}_proj.{weight,bias}  -> self_attention.linear_qkv.{weight,bias}, rows
//       regrouped per query group [q heads of g | k_g | v_g] (Megatron's layout)
//   self_attn.{q,k}_norm                  -> self_attention.{q,k}_layernorm
//   self_attn.q_proj / q_a_proj / q_a_layernorm / q_b_proj / kv_a_proj_with_mqa /
//       kv_a_layernorm / kv_b_proj (MLA)  -> linear_q_proj / linear_q_down_proj /
//       linear_q_up_proj.layer_norm_weight / linear_q_up_proj / linear_kv_down_proj /
//       linear_kv_up_proj.layer_norm_weight / linear_kv_up_proj (rows unchanged)
//   self_attn.o_proj                      -> self_attention.linear_proj
//   input_layernorm                       -> self_attention.linear_qkv.layer_norm_weight (GQA)
//                                            or input_layernorm (MLA)
//   post_attention_layernorm              -> mlp.linear_fc1.layer_norm_weight (dense)
//                                            or pre_mlp_layernorm (MoE)
//   mlp.{gate,up}_proj, down_proj         -> mlp.linear_fc1 ([gate; up]), mlp.linear_fc2
//   mlp.gate                              -> mlp.router
//   mlp.experts.E.{gate,up,down}_proj     -> mlp.experts.linear_fc1.weightE, linear_fc2.weightE
//   mlp.shared_expert(s).*, shared_expert_gate -> mlp.shared_experts.*, gate_weight
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "moebench/ckpt/safetensors.h"
#include "moebench/config/model_config.h"
#include "moebench/model/gpt_model.h"

namespace moebench::ckpt {

// A hub model's architecture in our terms, with the conventions that make
// GPTModel compute exactly what transformers computes.
struct HfModelSpec {
  config::ModelConfig config;
  model::ModelConventions conventions;
};

// Reads a hub config.json (model_type mixtral, qwen2_moe, qwen3_moe,
// deepseek_v2, deepseek_v3). RoPE comes from rope_theta / rope_scaling or the
// newer rope_parameters. The vocabulary is not padded (padded = vocab_size).
HfModelSpec read_hf_config(const std::filesystem::path& config_json);

// One of our parameters as hub tensors: the concatenation, along dim 0, of
// row ranges of hub tensors (1-D tensors count elements as rows).
struct HfRowRange {
  std::string hub_name;
  int64_t begin = 0;
  int64_t rows = 0;
};
struct HfTensorMapping {
  std::string name;  // ours
  std::vector<HfRowRange> pieces;
};
std::vector<HfTensorMapping> hf_tensor_mappings(const config::ModelConfig& config);
// Our buffers as hub tensors: the aux-loss-free router's expert bias
// (model.layers.L.mlp.gate.e_score_correction_bias, DeepSeek-V3) as
// decoder.layers.L.mlp.router.expert_bias.
std::vector<HfTensorMapping> hf_buffer_mappings(const config::ModelConfig& config);

// Copies the hub tensors into the model's parameters and buffers (DeepSeek-V3's
// e_score_correction_bias into the router's expert bias); a pipeline stage or
// expert-parallel rank fills only what it holds. Throws on a missing or
// misshapen hub tensor of what the model holds, and on a hub tensor that no
// part of the model would take.
void load_hf_weights(model::GPTModel& model, const SafetensorsCheckpoint& checkpoint);

// The model's values (or gradients, after adding any weight gradients the
// routed experts still keep: GPTModel::flush_weight_gradients) in hub names
// and layout, float32.
std::map<std::string, Tensor> export_hf_tensors(model::GPTModel& model, bool gradients);

}  // namespace moebench::ckpt
