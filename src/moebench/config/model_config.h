#pragma once
// The architecture of a model, typed, with Megatron-LM's defaults for what
// the flags leave out.
#include <string>
#include <vector>

#include "moebench/config/flag_map.h"

namespace moebench::config {

enum class ScoreFunction { Softmax, Sigmoid };
enum class LoadBalancing { AuxLoss, SeqAuxLoss, None };
enum class Dispatcher { AllGather, AllToAll, Flex };

struct RopeConfig {
  double base = 10000.0;
  double percent = 1.0;  // fraction of the head dimension rotated
  bool yarn = false;
  double scaling_factor = 1.0;
  int original_max_positions = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct MlaConfig {
  int q_lora_rank = 0;  // 0: queries projected directly from the hidden state
  int kv_lora_rank = 512;
  int qk_head_dim = 128;
  int qk_pos_emb_head_dim = 64;
  int v_head_dim = 128;
};

struct MoeConfig {
  int num_experts = 0;  // 0: dense model
  int ffn_hidden_size = 0;
  int topk = 2;
  int shared_expert_size = 0;  // 0: no shared experts
  bool shared_expert_gate = false;
  std::vector<bool> is_moe_layer;  // one per layer
  ScoreFunction score_function = ScoreFunction::Softmax;
  bool pre_softmax = false;
  bool expert_bias = false;
  double bias_update_rate = 1e-3;
  int num_groups = 0;  // 0: no group-limited routing
  int group_topk = 0;
  double topk_scaling_factor = 1.0;
  LoadBalancing load_balancing = LoadBalancing::AuxLoss;
  double aux_loss_coeff = 0.0;
  double z_loss_coeff = 0.0;
  double capacity_factor = 0.0;  // 0: no token dropping
  bool force_load_balancing = false;
  Dispatcher dispatcher = Dispatcher::AllGather;
  bool grouped_gemm = false;
  bool permute_fusion = false;
  // moebench's --moe-wgrad-microbatches: the routed experts' weight gradients
  // of this many micro-batches are computed together (1: each in its own
  // backward, as Megatron does).
  int wgrad_microbatches = 1;
};

struct ModelConfig {
  int num_layers = 0;
  int hidden_size = 0;
  int ffn_hidden_size = 0;
  int num_attention_heads = 0;
  int num_query_groups = 0;
  int kv_channels = 0;
  int seq_length = 0;
  int vocab_size = 0;         // real vocabulary
  int padded_vocab_size = 0;  // padded to make-vocab-size-divisible-by x TP
  // Megatron's TransformerConfig.sequence_parallel: activations between the
  // tensor-parallel blocks sharded over the tp ranks (only with TP > 1).
  bool sequence_parallel = false;
  double norm_epsilon = 1e-5;
  bool add_qkv_bias = false;
  bool qk_layernorm = false;
  bool multi_latent_attention = false;
  double init_method_std = 0.02;
  int mtp_num_layers = 0;
  double mtp_loss_scaling_factor = 0.1;
  RopeConfig rope;
  MlaConfig mla;
  MoeConfig moe;

  bool is_moe() const { return moe.num_experts > 0; }
  int num_moe_layers() const;
  int num_dense_layers() const { return num_layers - num_moe_layers(); }
};

// Reads the architecture from resolved flags; `tensor_parallel` pads the vocabulary as Megatron does.
ModelConfig model_config_from_flags(const FlagMap& flags, int tensor_parallel);

const char* dispatcher_name(Dispatcher dispatcher);

}  // namespace moebench::config
