#include "moebench/train/flops.h"

namespace moebench::train {

double attention_flops_term(const config::ModelConfig& m) {
  const double h = m.hidden_size, s = m.seq_length, heads = m.num_attention_heads;
  if (m.multi_latent_attention) {
    const auto& mla = m.mla;
    const double qk = mla.qk_head_dim, rope = mla.qk_pos_emb_head_dim, v = mla.v_head_dim;
    const double q_term = mla.q_lora_rank > 0 ? mla.q_lora_rank * (h + heads * (qk + rope) + 1)
                                              : h * heads * (qk + rope);
    return q_term + mla.kv_lora_rank * (h + heads * (qk + v) + 1) + h * rope + heads * v * h +
           s * heads * (qk + rope) / 2 + s * heads * v / 2;
  }
  const double q = static_cast<double>(m.kv_channels) * m.num_attention_heads;
  const double kv = static_cast<double>(m.kv_channels) * m.num_query_groups;
  return h * (q + 2 * kv) + q * s + q * h;
}

double flops_per_iteration(const config::ModelConfig& m, long long global_batch) {
  const double h = m.hidden_size;
  const double dense_layers = m.num_dense_layers(), moe_layers = m.num_moe_layers();
  const double mlp = 3.0 * m.ffn_hidden_size * dense_layers +
                     3.0 * m.moe.ffn_hidden_size * m.moe.topk * moe_layers +
                     3.0 * m.moe.shared_expert_size * moe_layers;
  const double per_token = h * mlp + attention_flops_term(m) * m.num_layers +
                           h * static_cast<double>(m.padded_vocab_size) * (1 + m.mtp_num_layers);
  return static_cast<double>(global_batch) * m.seq_length * 6.0 * per_token;
}

}  // namespace moebench::train
