#include "moebench/config/model_config.h"

#include <algorithm>

#include "moebench/config/moe_layer_freq.h"
#include "moebench/core/error.h"

namespace moebench::config {
namespace {

int positive(const FlagMap& flags, const char* name) {
  auto value = flags.find_int(name);
  if (!value) throw Error(std::string("flag ") + name + " is required");
  if (*value < 1) throw Error(std::string("flag ") + name + " must be positive, got " + std::to_string(*value));
  return static_cast<int>(*value);
}

template <typename Enum>
Enum choose(const FlagMap& flags, const char* name, const char* fallback,
            std::initializer_list<std::pair<const char*, Enum>> choices) {
  std::string value = flags.get_string(name, fallback);
  std::string allowed;
  for (const auto& [text, e] : choices) {
    if (value == text) return e;
    allowed += (allowed.empty() ? "" : ", ") + std::string(text);
  }
  throw Error(std::string("flag ") + name + " '" + value + "' is not one of: " + allowed);
}

// Megatron's default SwiGLU width: 2/3 of 4h, rounded down to a multiple of 64.
int default_ffn_hidden_size(int hidden, bool swiglu) {
  return swiglu ? static_cast<int>(4.0 * hidden * 2.0 / 3.0 / 64.0) * 64 : 4 * hidden;
}

// The tokenizer's vocabulary: --vocab-size, plus the end-of-document token
// that Megatron's NullTokenizer adds.
int vocabulary_size(const FlagMap& flags) {
  int size = positive(flags, "--vocab-size");
  return flags.get_string("--tokenizer-type", "") == "NullTokenizer" ? size + 1 : size;
}

}  // namespace

int ModelConfig::num_moe_layers() const {
  return static_cast<int>(std::count(moe.is_moe_layer.begin(), moe.is_moe_layer.end(), true));
}

ModelConfig model_config_from_flags(const FlagMap& flags, int tensor_parallel) {
  ModelConfig m;
  m.num_layers = positive(flags, "--num-layers");
  m.hidden_size = positive(flags, "--hidden-size");
  m.num_attention_heads = positive(flags, "--num-attention-heads");
  m.ffn_hidden_size = static_cast<int>(
      flags.get_int("--ffn-hidden-size", default_ffn_hidden_size(m.hidden_size, flags.get_bool("--swiglu"))));
  m.num_query_groups = flags.get_bool("--group-query-attention")
                           ? static_cast<int>(flags.get_int("--num-query-groups", 1))
                           : m.num_attention_heads;
  m.kv_channels = static_cast<int>(flags.get_int("--kv-channels", m.hidden_size / m.num_attention_heads));
  m.seq_length = positive(flags, "--seq-length");
  m.vocab_size = vocabulary_size(flags);
  int multiple = static_cast<int>(flags.get_int("--make-vocab-size-divisible-by", 128)) * tensor_parallel;
  m.padded_vocab_size = (m.vocab_size + multiple - 1) / multiple * multiple;
  // Megatron turns sequence parallelism off when there is no tensor parallelism.
  m.sequence_parallel = flags.get_bool("--sequence-parallel") && tensor_parallel > 1;
  m.norm_epsilon = flags.get_float("--norm-epsilon", 1e-5);
  m.add_qkv_bias = flags.get_bool("--add-qkv-bias");
  m.qk_layernorm = flags.get_bool("--qk-layernorm");
  m.init_method_std = flags.get_float("--init-method-std", 0.02);
  m.mtp_num_layers = static_cast<int>(flags.get_int("--mtp-num-layers", 0));
  m.mtp_loss_scaling_factor = flags.get_float("--mtp-loss-scaling-factor", 0.1);

  m.rope.base = flags.get_float("--rotary-base", 10000.0);
  m.rope.percent = flags.get_float("--rotary-percent", 1.0);
  m.multi_latent_attention = flags.get_bool("--multi-latent-attention");
  // Megatron's MLA defaults to YaRN; --rope-type rope turns it off.
  m.rope.yarn = flags.get_string("--rope-type", m.multi_latent_attention ? "yarn" : "rope") == "yarn";
  m.rope.scaling_factor = flags.get_float("--rotary-scaling-factor", m.rope.yarn ? 40.0 : 1.0);
  m.rope.original_max_positions = static_cast<int>(flags.get_int("--original-max-position-embeddings", 4096));
  m.rope.beta_fast = flags.get_float("--beta-fast", 32.0);
  m.rope.beta_slow = flags.get_float("--beta-slow", 1.0);
  m.rope.mscale = flags.get_float("--mscale", 1.0);
  m.rope.mscale_all_dim = flags.get_float("--mscale-all-dim", 0.0);
  if (m.multi_latent_attention) {
    m.mla.q_lora_rank = static_cast<int>(flags.get_int("--q-lora-rank", 0));
    m.mla.kv_lora_rank = static_cast<int>(flags.get_int("--kv-lora-rank", 512));
    m.mla.qk_head_dim = static_cast<int>(flags.get_int("--qk-head-dim", 128));
    m.mla.qk_pos_emb_head_dim = static_cast<int>(flags.get_int("--qk-pos-emb-head-dim", 64));
    m.mla.v_head_dim = static_cast<int>(flags.get_int("--v-head-dim", 128));
  }

  MoeConfig& moe = m.moe;
  moe.num_experts = static_cast<int>(flags.get_int("--num-experts", 0));
  moe.is_moe_layer.assign(m.num_layers, false);
  if (moe.num_experts > 0) {
    moe.ffn_hidden_size = static_cast<int>(flags.get_int("--moe-ffn-hidden-size", m.ffn_hidden_size));
    moe.topk = static_cast<int>(flags.get_int("--moe-router-topk", 2));
    moe.shared_expert_size = static_cast<int>(flags.get_int("--moe-shared-expert-intermediate-size", 0));
    moe.shared_expert_gate = flags.get_bool("--moe-shared-expert-gate");
    moe.is_moe_layer = parse_moe_layer_freq(flags.get_string("--moe-layer-freq", "1"), m.num_layers);
    moe.score_function = choose<ScoreFunction>(flags, "--moe-router-score-function", "softmax",
                                {{"softmax", ScoreFunction::Softmax}, {"sigmoid", ScoreFunction::Sigmoid}});
    moe.pre_softmax = flags.get_bool("--moe-router-pre-softmax");
    moe.expert_bias = flags.get_bool("--moe-router-enable-expert-bias");
    moe.bias_update_rate = flags.get_float("--moe-router-bias-update-rate", 1e-3);
    moe.num_groups = static_cast<int>(flags.get_int("--moe-router-num-groups", 0));
    moe.group_topk = static_cast<int>(flags.get_int("--moe-router-group-topk", 0));
    moe.topk_scaling_factor = flags.get_float("--moe-router-topk-scaling-factor", 1.0);
    moe.load_balancing = choose<LoadBalancing>(flags, "--moe-router-load-balancing-type", "aux_loss",
                                {{"aux_loss", LoadBalancing::AuxLoss},
                                 {"seq_aux_loss", LoadBalancing::SeqAuxLoss},
                                 {"none", LoadBalancing::None}});
    moe.aux_loss_coeff = flags.get_float("--moe-aux-loss-coeff", 0.0);
    moe.z_loss_coeff = flags.get_float("--moe-z-loss-coeff", 0.0);
    moe.capacity_factor = flags.get_float("--moe-expert-capacity-factor", 0.0);
    moe.force_load_balancing = flags.get_bool("--moe-router-force-load-balancing");
    moe.dispatcher = choose<Dispatcher>(flags, "--moe-token-dispatcher-type", "allgather",
                            {{"allgather", Dispatcher::AllGather},
                             {"alltoall", Dispatcher::AllToAll},
                             {"flex", Dispatcher::Flex}});
    moe.grouped_gemm = flags.get_bool("--moe-grouped-gemm");
    moe.permute_fusion = flags.get_bool("--moe-permute-fusion");
    moe.wgrad_microbatches = static_cast<int>(flags.get_int("--moe-wgrad-microbatches", 1));
  }
  return m;
}

const char* dispatcher_name(Dispatcher dispatcher) {
  switch (dispatcher) {
    case Dispatcher::AllGather: return "allgather";
    case Dispatcher::AllToAll: return "alltoall";
    case Dispatcher::Flex: return "flex";
  }
  return "?";
}

}  // namespace moebench::config
