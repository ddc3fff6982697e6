#pragma once
// Grouped-query self-attention as Megatron-Core's SelfAttention (TE spec).
//
// linear_qkv is one fused projection laid out per query group, as Megatron
// stores it: for each of the G groups, the rows of its H/G query heads, then
// its key head, then its value head ([q_g0 | k_g0 | v_g0 | q_g1 | ...], each
// head kv_channels rows). The optional bias follows the same layout. With
// --qk-layernorm the per-head RMSNorms (Qwen3's q_norm / k_norm) run before
// RoPE. The input norm is the layer's (fused as linear_qkv.layer_norm_weight
// in TE naming) and is owned by TransformerLayer.
//
// Parameters under `prefix` (decoder.layers.N.self_attention):
//   linear_qkv.weight   [G*(H/G+2)*d, h]   linear_qkv.bias [G*(H/G+2)*d] (--add-qkv-bias)
//   q_layernorm.weight  [d]                k_layernorm.weight [d]        (--qk-layernorm)
//   linear_proj.weight  [h, H*d]
//
// Tensor-parallel by heads as Megatron: each of the TP ranks holds G/TP whole
// query groups of linear_qkv (column-parallel: its rows are grouped so) and
// the matching H/TP heads' columns of linear_proj (row-parallel); the q/k
// layernorms are replicated and see only the rank's heads.
#include <optional>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/model/tensor_parallel_linear.h"
#include "moebench/model/rmsnorm.h"
#include "moebench/model/rotary.h"

namespace moebench::model {

class GqaAttention {
 public:
  struct Context {
    int64_t batch = 0, seq = 0;
    Tensor inp;                               // [n, h], already normed (this rank's tokens under SP)
    RMSNorm::Context q_norm, k_norm;          // when qk_layernorm
    Tensor q, k, v;                           // [N, H|G, d] as attention saw them (H, G: this rank's)
    Tensor attn;                              // [N, H*d]
    Tensor lse;                               // [B, H, S]
  };

  GqaAttention(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
               const dist::TensorParallelRegions& tp = {});

  // inp [B*S, h] -> residual + attention out [B*S, h] (this rank's token rows
  // of all three under SP; residual undefined for none). linear_proj adds the
  // residual after its tp reduction, in its GEMM with one tp rank.
  Tensor forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context, const Tensor& residual) const;
  // Returns dinp; accumulates parameter grads.
  Tensor backward(const Tensor& dout, const Context& context);

  void collect(std::vector<Parameter*>& parameters);

 private:
  int64_t heads_, groups_, head_dim_;  // heads and groups of this tp rank
  ColumnParallelLinear linear_qkv_;
  std::optional<RMSNorm> q_layernorm_, k_layernorm_;
  RowParallelLinear linear_proj_;
  RotaryEmbedding rotary_;
};

}  // namespace moebench::model
