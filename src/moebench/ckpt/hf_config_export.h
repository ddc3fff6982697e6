#pragma once
// A Hugging Face hub config.json for one of our models: the inverse of
// read_hf_config (hf_import.h), so read_hf_config(hf_config_json(m, c))
// rebuilds the same architecture and conventions. The hub architecture
// follows from the features:
//   multi-latent attention, softmax scores       -> deepseek_v2 (DeepseekV2ForCausalLM)
//   multi-latent attention, sigmoid + expert bias -> deepseek_v3 (DeepseekV3ForCausalLM)
//   a gated shared expert                        -> qwen2_moe   (Qwen2MoeForCausalLM)
//   q/k layernorm                                -> qwen3_moe   (Qwen3MoeForCausalLM)
//   otherwise                                    -> mixtral     (MixtralForCausalLM)
// The vocabulary is the padded one: the embedding and output layer keep all
// their rows, so the hub model computes what ours does.
#include <string>

#include "moebench/config/model_config.h"
#include "moebench/core/dtype.h"
#include "moebench/model/model_conventions.h"

namespace moebench::ckpt {

// config.json's text. `weights` is the dtype of the exported weights
// (torch_dtype); max_position_embeddings is Megatron's flag of that name. Throws an Error naming the setting when no hub architecture
// computes what the model computes (a dense model, sigmoid scores without
// MLA, group-limited routing that ranks groups otherwise than the hub model,
// a MoE layer pattern the hub config cannot express, ...).
std::string hf_config_json(const config::ModelConfig& config, const model::ModelConventions& conventions,
                           DType weights, int max_position_embeddings);

}  // namespace moebench::ckpt
