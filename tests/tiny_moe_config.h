#pragma once
// The tiny two-layer MoE model the CPU model tests build by hand: 16 wide,
// 4 heads in 2 query groups, 4 routed experts of width 8 (top-2) and a shared
// expert of width 8. Each test then sets what it is about (which layers are
// MoE, gates, losses, grouped GEMMs).
#include "moebench/config/model_config.h"

namespace moebench::testing {

inline config::ModelConfig tiny_moe_config() {
  config::ModelConfig m;
  m.num_layers = 2;
  m.hidden_size = 16;
  m.ffn_hidden_size = 24;
  m.num_attention_heads = 4;
  m.num_query_groups = 2;
  m.kv_channels = 4;
  m.seq_length = 8;
  m.vocab_size = m.padded_vocab_size = 32;
  m.init_method_std = 0.2;  // large enough that routing and aux losses have real gradients
  m.moe.num_experts = 4;
  m.moe.ffn_hidden_size = 8;
  m.moe.topk = 2;
  m.moe.shared_expert_size = 8;
  return m;
}

}  // namespace moebench::testing
