#pragma once
// Multi-latent attention as Megatron-Core's MLASelfAttention (TE spec, with
// --qk-layernorm) and DeepSeek-V2/V3.
//
// Queries: linear_q_proj (no q-LoRA), or linear_q_down_proj -> RMSNorm
// (linear_q_up_proj.layer_norm_weight) -> linear_q_up_proj. Each query head is
// [q_nope (qk_head_dim) | q_pe (qk_pos_emb_head_dim)].
// Keys and values: linear_kv_down_proj gives [latent (kv_lora_rank) | k_pe];
// the latent goes through RMSNorm (linear_kv_up_proj.layer_norm_weight) and
// linear_kv_up_proj to per-head [k_nope | v]; k_pe is one rope head shared by
// all heads. RoPE uses DeepSeek's interleaved pair layout, so hub weights need
// no permutation. Scores are scaled by 1/sqrt(dn+dr) times
// yarn_mscale(factor, mscale_all_dim)^2 under YaRN, as Megatron and HF
// transformers 5 (DeepSeek-V2 and V3) do. The input norm is the layer's
// (input_layernorm.weight).
//
// Parameters under `prefix` (decoder.layers.N.self_attention), H heads, h hidden:
//   linear_q_proj.weight                 [H*(dn+dr), h]          (q_lora_rank == 0)
//   linear_q_down_proj.weight            [q_lora, h]             (q_lora_rank > 0)
//   linear_q_up_proj.layer_norm_weight   [q_lora]
//   linear_q_up_proj.weight              [H*(dn+dr), q_lora]
//   linear_kv_down_proj.weight           [kv_lora + dr, h]
//   linear_kv_up_proj.layer_norm_weight  [kv_lora]
//   linear_kv_up_proj.weight             [H*(dn+dv), kv_lora]
//   linear_proj.weight                   [h, H*dv]
//
// Tensor-parallel by heads as Megatron's MLA: the down projections and their
// norms are replicated and run on this rank's tokens; linear_q_proj and the
// up projections are column-parallel (H/TP heads each, their inputs and the
// shared rope key gathered over the tp ranks under sequence parallelism) and
// linear_proj is row-parallel.
#include <optional>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/model/tensor_parallel_linear.h"
#include "moebench/model/rmsnorm.h"
#include "moebench/model/rotary.h"

namespace moebench::model {

class MlaAttention {
 public:
  struct Context {
    int64_t batch = 0, seq = 0;
    Tensor inp;                  // [n, h], already normed (n: this rank's tokens under SP, else N)
    Tensor q_latent;             // [n, q_lora] (q-LoRA only)
    RMSNorm::Context q_norm;     // (q-LoRA only)
    Tensor q_latent_normed;      // [n, q_lora] (q-LoRA only)
    RMSNorm::Context kv_norm;
    Tensor kv_latent_normed;     // [n, kv_lora]
    // [N, H, dn+dr], [N, H, dn+dr], [N, H, dv] as attention saw them (H: this rank's heads)
    Tensor q, k, v;
    Tensor attn;                 // [N, H*dv]
    Tensor lse;                  // [B, H, S]
  };

  MlaAttention(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
               const dist::TensorParallelRegions& tp = {});

  // inp [B*S, h] -> residual + attention out [B*S, h] (this rank's token rows
  // of all three under SP; residual undefined for none). linear_proj adds the
  // residual after its tp reduction, in its GEMM with one tp rank.
  Tensor forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context, const Tensor& residual) const;
  // Returns dinp; accumulates parameter grads.
  Tensor backward(const Tensor& dout, const Context& context);

  void collect(std::vector<Parameter*>& parameters);

 private:
  Tensor project_queries(const Tensor& inp, Context& context) const;
  Tensor project_queries_backward(const Tensor& dq, const Context& context);

  dist::TensorParallelRegions tp_;
  int64_t heads_;  // this tp rank's
  int64_t nope_dim_, rope_dim_, v_dim_, kv_lora_rank_;
  double softmax_scale_;
  std::optional<ColumnParallelLinear> linear_q_proj_;  // without q-LoRA
  std::optional<Linear> linear_q_down_proj_;           // with q-LoRA
  std::optional<RMSNorm> q_layernorm_;
  std::optional<ColumnParallelLinear> linear_q_up_proj_;
  Linear linear_kv_down_proj_;
  RMSNorm kv_layernorm_;
  ColumnParallelLinear linear_kv_up_proj_;
  RowParallelLinear linear_proj_;
  RotaryEmbedding rotary_;
};

}  // namespace moebench::model
