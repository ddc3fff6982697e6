#include "moebench/ckpt/hf_import.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

using nlohmann::json;

// A config value that may be absent or null.
template <typename T>
T value_or(const json& object, const char* key, T fallback) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? fallback : it->get<T>();
}

void read_rope(const json& hub, config::RopeConfig& rope) {
  // transformers 5 moved rope_theta and rope_scaling into rope_parameters.
  const json none = json::object();
  const json& parameters = hub.contains("rope_parameters") && hub["rope_parameters"].is_object()
                               ? hub["rope_parameters"]
                               : none;
  rope.base = value_or(parameters, "rope_theta", value_or(hub, "rope_theta", 10000.0));
  rope.percent = value_or(hub, "partial_rotary_factor", 1.0);
  const json& scaling = hub.contains("rope_scaling") && hub["rope_scaling"].is_object()
                            ? hub["rope_scaling"]
                            : parameters;
  const std::string type = value_or(scaling, "rope_type", value_or<std::string>(scaling, "type", "default"));
  if (type == "default") return;
  if (type != "yarn")
    throw Error("HF rope type '" + type + "' is not supported; use default or yarn");
  rope.yarn = true;
  rope.scaling_factor = value_or(scaling, "factor", 1.0);
  rope.original_max_positions = value_or(scaling, "original_max_position_embeddings", 4096);
  rope.beta_fast = value_or(scaling, "beta_fast", 32.0);
  rope.beta_slow = value_or(scaling, "beta_slow", 1.0);
  // 0 means absent, as HF treats a missing mscale.
  rope.mscale = value_or(scaling, "mscale", 0.0);
  rope.mscale_all_dim = value_or(scaling, "mscale_all_dim", 0.0);
}

void read_deepseek_moe(const json& hub, HfModelSpec& spec) {
  config::ModelConfig& m = spec.config;
  config::MoeConfig& moe = m.moe;
  moe.num_experts = value_or(hub, "n_routed_experts", 0);
  moe.ffn_hidden_size = value_or(hub, "moe_intermediate_size", 0);
  moe.shared_expert_size = value_or(hub, "n_shared_experts", 0) * moe.ffn_hidden_size;
  const int first_dense = value_or(hub, "first_k_dense_replace", 0);
  const int frequency = value_or(hub, "moe_layer_freq", 1);
  for (int l = 0; l < m.num_layers; ++l)
    moe.is_moe_layer[l] = moe.num_experts > 0 && l >= first_dense && l % frequency == 0;
  moe.topk_scaling_factor = value_or(hub, "routed_scaling_factor", 1.0);
  const std::string method = value_or<std::string>(hub, "topk_method", "greedy");
  if (method == "group_limited_greedy" || method == "noaux_tc") {
    moe.num_groups = value_or(hub, "n_group", 1);
    moe.group_topk = value_or(hub, "topk_group", 1);
  }
  if (method == "noaux_tc") {
    moe.score_function = config::ScoreFunction::Sigmoid;
    moe.expert_bias = true;
    spec.conventions.group_score = ops::GroupScore::kTop2Sum;
  } else {
    // Softmax over all experts, top-k; renormalising the k equals softmax after top-k.
    moe.pre_softmax = !value_or(hub, "norm_topk_prob", false);
    spec.conventions.group_score = ops::GroupScore::kMax;
  }
  const double seq_aux = value_or(hub, "aux_loss_alpha", 0.0);
  moe.load_balancing = seq_aux > 0 ? config::LoadBalancing::SeqAuxLoss : config::LoadBalancing::None;
  moe.aux_loss_coeff = seq_aux;

  m.multi_latent_attention = true;
  m.qk_layernorm = true;
  m.mla.q_lora_rank = value_or(hub, "q_lora_rank", 0);
  m.mla.kv_lora_rank = value_or(hub, "kv_lora_rank", 512);
  m.mla.qk_head_dim = value_or(hub, "qk_nope_head_dim", 128);
  m.mla.qk_pos_emb_head_dim = value_or(hub, "qk_rope_head_dim", 64);
  m.mla.v_head_dim = value_or(hub, "v_head_dim", 128);
}

void read_qwen_or_mixtral_moe(const json& hub, const std::string& type, HfModelSpec& spec) {
  config::ModelConfig& m = spec.config;
  config::MoeConfig& moe = m.moe;
  moe.num_experts = value_or(hub, "num_experts", value_or(hub, "num_local_experts", 0));
  moe.ffn_hidden_size = value_or(hub, "moe_intermediate_size", m.ffn_hidden_size);
  const std::vector<int> dense_layers = value_or(hub, "mlp_only_layers", std::vector<int>{});
  const int step = value_or(hub, "decoder_sparse_step", 1);
  for (int l = 0; l < m.num_layers; ++l)
    moe.is_moe_layer[l] = moe.num_experts > 0 && (l + 1) % step == 0 &&
                          std::find(dense_layers.begin(), dense_layers.end(), l) == dense_layers.end();
  // Mixtral always renormalises; Qwen says so with norm_topk_prob.
  moe.pre_softmax = type != "mixtral" && !value_or(hub, "norm_topk_prob", false);
  moe.aux_loss_coeff = value_or(hub, "router_aux_loss_coef", 0.0);
  moe.load_balancing = config::LoadBalancing::AuxLoss;
  if (type == "qwen2_moe") {
    moe.shared_expert_size = value_or(hub, "shared_expert_intermediate_size", 0);
    moe.shared_expert_gate = moe.shared_expert_size > 0;
    m.add_qkv_bias = value_or(hub, "qkv_bias", true);
  } else {
    m.add_qkv_bias = value_or(hub, "attention_bias", false);
  }
  m.qk_layernorm = type == "qwen3_moe";
}

}  // namespace

HfModelSpec read_hf_config(const std::filesystem::path& config_json) {
  std::ifstream file(config_json);
  if (!file) throw Error("cannot open HF config " + config_json.string());
  const json hub = json::parse(file);
  const std::string type = value_or<std::string>(hub, "model_type", "");
  HfModelSpec spec;
  config::ModelConfig& m = spec.config;
  m.num_layers = hub.at("num_hidden_layers").get<int>();
  m.hidden_size = hub.at("hidden_size").get<int>();
  m.ffn_hidden_size = value_or(hub, "intermediate_size", 0);
  m.num_attention_heads = hub.at("num_attention_heads").get<int>();
  m.num_query_groups = value_or(hub, "num_key_value_heads", m.num_attention_heads);
  m.kv_channels = value_or(hub, "head_dim", m.hidden_size / m.num_attention_heads);
  m.seq_length = value_or(hub, "max_position_embeddings", 4096);
  m.vocab_size = hub.at("vocab_size").get<int>();
  m.padded_vocab_size = m.vocab_size;
  m.norm_epsilon = value_or(hub, "rms_norm_eps", 1e-6);
  m.init_method_std = value_or(hub, "initializer_range", 0.02);
  if (value_or(hub, "tie_word_embeddings", false))
    throw Error("HF config " + config_json.string() + " ties embeddings; moebench keeps them untied");
  read_rope(hub, m.rope);
  m.moe.is_moe_layer.assign(m.num_layers, false);
  m.moe.topk = value_or(hub, "num_experts_per_tok", 2);
  if (type == "deepseek_v2" || type == "deepseek_v3") {
    read_deepseek_moe(hub, spec);
  } else if (type == "mixtral" || type == "qwen2_moe" || type == "qwen3_moe") {
    read_qwen_or_mixtral_moe(hub, type, spec);
  } else {
    throw Error("HF model_type '" + type +
                "' is not supported; use mixtral, qwen2_moe, qwen3_moe, deepseek_v2 or deepseek_v3");
  }
  return spec;
}

std::vector<HfTensorMapping> hf_tensor_mappings(const config::ModelConfig& config) {
  std::vector<HfTensorMapping> mappings;
  // `rows` 0 means the whole hub tensor. Whole pieces of one parameter are
  // equal in size ([gate; up]), which is how export recovers their row counts.
  auto whole = [](const std::string& hub) { return HfRowRange{hub, 0, 0}; };
  auto add = [&](const std::string& ours, std::vector<HfRowRange> pieces) {
    mappings.push_back({ours, std::move(pieces)});
  };
  auto add_same = [&](const std::string& ours, const std::string& hub) { add(ours, {whole(hub)}); };
  auto add_swiglu = [&](const std::string& ours, const std::string& hub) {
    add(ours + ".linear_fc1.weight", {whole(hub + ".gate_proj.weight"), whole(hub + ".up_proj.weight")});
    add_same(ours + ".linear_fc2.weight", hub + ".down_proj.weight");
  };

  add_same("embedding.word_embeddings.weight", "model.embed_tokens.weight");
  for (int l = 0; l < config.num_layers; ++l) {
    const std::string ours = "decoder.layers." + std::to_string(l);
    const std::string hub = "model.layers." + std::to_string(l);
    const std::string attn = ours + ".self_attention", hub_attn = hub + ".self_attn";
    if (config.multi_latent_attention) {
      add_same(ours + ".input_layernorm.weight", hub + ".input_layernorm.weight");
      if (config.mla.q_lora_rank == 0) {
        add_same(attn + ".linear_q_proj.weight", hub_attn + ".q_proj.weight");
      } else {
        add_same(attn + ".linear_q_down_proj.weight", hub_attn + ".q_a_proj.weight");
        add_same(attn + ".linear_q_up_proj.layer_norm_weight", hub_attn + ".q_a_layernorm.weight");
        add_same(attn + ".linear_q_up_proj.weight", hub_attn + ".q_b_proj.weight");
      }
      add_same(attn + ".linear_kv_down_proj.weight", hub_attn + ".kv_a_proj_with_mqa.weight");
      add_same(attn + ".linear_kv_up_proj.layer_norm_weight", hub_attn + ".kv_a_layernorm.weight");
      add_same(attn + ".linear_kv_up_proj.weight", hub_attn + ".kv_b_proj.weight");
    } else {
      add_same(attn + ".linear_qkv.layer_norm_weight", hub + ".input_layernorm.weight");
      const int64_t d = config.kv_channels;
      const int64_t per_group = config.num_attention_heads / config.num_query_groups;
      for (const char* kind : {"weight", "bias"}) {
        if (std::string(kind) == "bias" && !config.add_qkv_bias) continue;
        std::vector<HfRowRange> pieces;
        for (int64_t g = 0; g < config.num_query_groups; ++g) {
          pieces.push_back({hub_attn + ".q_proj." + kind, g * per_group * d, per_group * d});
          pieces.push_back({hub_attn + ".k_proj." + kind, g * d, d});
          pieces.push_back({hub_attn + ".v_proj." + kind, g * d, d});
        }
        add(attn + ".linear_qkv." + kind, pieces);
      }
      if (config.qk_layernorm) {
        add_same(attn + ".q_layernorm.weight", hub_attn + ".q_norm.weight");
        add_same(attn + ".k_layernorm.weight", hub_attn + ".k_norm.weight");
      }
    }
    add_same(attn + ".linear_proj.weight", hub_attn + ".o_proj.weight");

    const bool moe = config.is_moe() && config.moe.is_moe_layer[l];
    if (!moe) {
      add_same(ours + ".mlp.linear_fc1.layer_norm_weight", hub + ".post_attention_layernorm.weight");
      add_swiglu(ours + ".mlp", hub + ".mlp");
      continue;
    }
    add_same(ours + ".pre_mlp_layernorm.weight", hub + ".post_attention_layernorm.weight");
    add_same(ours + ".mlp.router.weight", hub + ".mlp.gate.weight");
    for (int e = 0; e < config.moe.num_experts; ++e) {
      const std::string expert = hub + ".mlp.experts." + std::to_string(e);
      const std::string index = std::to_string(e);
      add(ours + ".mlp.experts.linear_fc1.weight" + index,
          {whole(expert + ".gate_proj.weight"), whole(expert + ".up_proj.weight")});
      add_same(ours + ".mlp.experts.linear_fc2.weight" + index, expert + ".down_proj.weight");
    }
    if (config.moe.shared_expert_size > 0) {
      // Qwen2-MoE says shared_expert (one, gated), DeepSeek shared_experts.
      const std::string shared = hub + (config.moe.shared_expert_gate ? ".mlp.shared_expert"
                                                                      : ".mlp.shared_experts");
      add_swiglu(ours + ".mlp.shared_experts", shared);
      if (config.moe.shared_expert_gate)
        add_same(ours + ".mlp.shared_experts.gate_weight", hub + ".mlp.shared_expert_gate.weight");
    }
  }
  add_same("decoder.final_layernorm.weight", "model.norm.weight");
  add_same("output_layer.weight", "lm_head.weight");
  return mappings;
}

std::vector<HfTensorMapping> hf_buffer_mappings(const config::ModelConfig& config) {
  std::vector<HfTensorMapping> mappings;
  if (!config.is_moe() || !config.moe.expert_bias) return mappings;
  for (int l = 0; l < config.num_layers; ++l)
    if (config.moe.is_moe_layer[l])
      mappings.push_back({"decoder.layers." + std::to_string(l) + ".mlp.router.expert_bias",
                          {{"model.layers." + std::to_string(l) + ".mlp.gate.e_score_correction_bias", 0, 0}}});
  return mappings;
}

namespace {

int64_t row_width(const std::vector<int64_t>& shape) {
  int64_t width = 1;
  for (size_t i = 1; i < shape.size(); ++i) width *= shape[i];
  return width;
}

}  // namespace

void load_hf_weights(model::GPTModel& model, const SafetensorsCheckpoint& checkpoint) {
  // A pipeline stage or an expert-parallel rank holds part of the model: it
  // fills what it holds, and the hub tensors of the rest count as known.
  std::map<std::string, Tensor> held;
  for (model::Parameter* p : model.parameters()) held[p->name] = p->value;
  for (const model::Buffer& b : model.buffers()) held[b.name] = b.value;
  std::vector<HfTensorMapping> mappings = hf_tensor_mappings(model.config());
  for (HfTensorMapping& buffer : hf_buffer_mappings(model.config())) mappings.push_back(std::move(buffer));
  std::map<std::string, std::vector<float>> cache;
  std::set<std::string> known;
  for (const HfTensorMapping& mapping : mappings) {
    for (const HfRowRange& piece : mapping.pieces) known.insert(piece.hub_name);
    const auto found = held.find(mapping.name);
    if (found == held.end()) continue;
    const Tensor& value = found->second;
    float* target = value.data<float>();
    const int64_t width = row_width(value.shape());
    int64_t written = 0;
    for (const HfRowRange& piece : mapping.pieces) {
      const SafetensorsTensor& hub = checkpoint.tensor(piece.hub_name);
      auto [it, fresh] = cache.try_emplace(piece.hub_name);
      if (fresh) it->second = to_float_vector(hub);
      const int64_t hub_rows = hub.shape.empty() ? 1 : hub.shape[0];
      const int64_t rows = piece.rows == 0 ? hub_rows : piece.rows;
      if (row_width(hub.shape) != width || piece.begin + rows > hub_rows || (written + rows) * width > value.numel())
        throw Error("HF tensor " + piece.hub_name + " " + format_dims(hub.shape) + " does not fit " + mapping.name +
                    " " + format_dims(value.shape()));
      std::memcpy(target + written * width, it->second.data() + piece.begin * width, rows * width * sizeof(float));
      written += rows;
    }
    if (written * width != value.numel())
      throw Error("HF tensors fill only " + std::to_string(written * width) + " of the " +
                  std::to_string(value.numel()) + " values of " + mapping.name);
  }
  for (const auto& [name, tensor] : checkpoint.tensors())
    if (!known.count(name) && name.find("rotary_emb") == std::string::npos)
      throw Error("HF tensor " + name + " has no counterpart in moebench's model");
}

std::map<std::string, Tensor> export_hf_tensors(model::GPTModel& model, bool gradients) {
  // The whole gradients: what --moe-wgrad-microbatches still keeps is added first.
  if (gradients) model.flush_weight_gradients();
  const std::vector<HfTensorMapping> mappings = hf_tensor_mappings(model.config());
  // First pass: each hub tensor's row count, from the pieces that cover it.
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const HfTensorMapping& mapping : mappings) {
    const Tensor& value = model.parameter(mapping.name).value;
    const int64_t width = row_width(value.shape());
    const int64_t whole_rows = value.size(0) / int64_t(mapping.pieces.size());
    for (const HfRowRange& piece : mapping.pieces) {
      const int64_t end = piece.begin + (piece.rows == 0 ? whole_rows : piece.rows);
      std::vector<int64_t>& shape = shapes[piece.hub_name];
      if (shape.empty()) shape = value.dim() == 1 ? std::vector<int64_t>{0}
                                                  : std::vector<int64_t>{0, width};
      shape[0] = std::max(shape[0], end);
    }
  }
  std::map<std::string, Tensor> out;
  for (const auto& [name, shape] : shapes) out[name] = Tensor::zeros(shape, DType::F32);
  for (const HfTensorMapping& mapping : mappings) {
    const model::Parameter& parameter = model.parameter(mapping.name);
    const Tensor& source = gradients ? parameter.grad : parameter.value;
    const int64_t width = row_width(source.shape());
    const int64_t whole_rows = source.size(0) / int64_t(mapping.pieces.size());
    int64_t read = 0;
    for (const HfRowRange& piece : mapping.pieces) {
      const int64_t rows = piece.rows == 0 ? whole_rows : piece.rows;
      std::memcpy(out[piece.hub_name].data<float>() + piece.begin * width,
                  source.data<float>() + read * width, rows * width * sizeof(float));
      read += rows;
    }
  }
  return out;
}

}  // namespace moebench::ckpt
