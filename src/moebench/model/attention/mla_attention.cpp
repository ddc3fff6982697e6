#include "moebench/model/attention/mla_attention.h"

#include <cmath>
#include <string>

#include "moebench/core/error.h"

#include "moebench/ops/attention.h"
#include "moebench/ops/elementwise.h"

namespace moebench::model {
namespace {

config::RopeConfig full_rotation(config::RopeConfig rope) {
  rope.percent = 1.0;  // the decoupled rope channels are rotated entirely
  return rope;
}

int64_t heads_per_rank(int64_t heads, const dist::TensorParallelRegions& tp) {
  if (heads % tp.size() != 0)
    throw Error("num-attention-heads " + std::to_string(heads) + " is not divisible by TP=" +
                std::to_string(tp.size()) + "; choose a TP that divides it");
  return heads / tp.size();
}

}  // namespace

MlaAttention::MlaAttention(const std::string& prefix, const config::ModelConfig& config,
                           uint64_t seed, const dist::TensorParallelRegions& tp)
    : tp_(tp),
      heads_(heads_per_rank(config.num_attention_heads, tp)),
      nope_dim_(config.mla.qk_head_dim),
      rope_dim_(config.mla.qk_pos_emb_head_dim),
      v_dim_(config.mla.v_head_dim),
      kv_lora_rank_(config.mla.kv_lora_rank),
      softmax_scale_(ops::mla_softmax_scale(nope_dim_ + rope_dim_,
                                            RotaryEmbedding::yarn_scaling(config.rope))),
      linear_kv_down_proj_(prefix + ".linear_kv_down_proj", config.hidden_size,
                           kv_lora_rank_ + rope_dim_, float(config.init_method_std), seed),
      kv_layernorm_(prefix + ".linear_kv_up_proj.layer_norm_weight", kv_lora_rank_,
                    config.norm_epsilon),
      linear_kv_up_proj_(prefix + ".linear_kv_up_proj", kv_lora_rank_,
                         int64_t(config.num_attention_heads) * (nope_dim_ + v_dim_),
                         float(config.init_method_std), seed, tp),
      linear_proj_(prefix + ".linear_proj", int64_t(config.num_attention_heads) * v_dim_, config.hidden_size,
                   float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed, tp),
      rotary_(rope_dim_, full_rotation(config.rope), ops::RopeLayout::kInterleaved) {
  const int64_t q_width = int64_t(config.num_attention_heads) * (nope_dim_ + rope_dim_);
  const float std = float(config.init_method_std);
  const int64_t q_lora = config.mla.q_lora_rank;
  if (q_lora == 0) {
    linear_q_proj_.emplace(prefix + ".linear_q_proj", config.hidden_size, q_width, std, seed, tp);
  } else {
    linear_q_down_proj_.emplace(prefix + ".linear_q_down_proj", config.hidden_size, q_lora, std,
                                seed);
    q_layernorm_.emplace(prefix + ".linear_q_up_proj.layer_norm_weight", q_lora,
                         config.norm_epsilon);
    linear_q_up_proj_.emplace(prefix + ".linear_q_up_proj", q_lora, q_width, std, seed, tp);
  }
  // The replicated down projections and norms see this rank's tokens only under SP.
  for (Parameter* p : {&linear_kv_down_proj_.weight, &kv_layernorm_.weight,
                       linear_q_down_proj_ ? &linear_q_down_proj_->weight : nullptr,
                       q_layernorm_ ? &q_layernorm_->weight : nullptr})
    if (p) p->grad_partial_over_tp = tp.sequence_parallel();
}

Tensor MlaAttention::project_queries(const Tensor& inp, Context& context) const {
  if (linear_q_proj_) return linear_q_proj_->forward(inp);
  context.q_latent = linear_q_down_proj_->forward(inp);
  context.q_latent_normed = q_layernorm_->forward(context.q_latent, context.q_norm);
  return linear_q_up_proj_->forward(context.q_latent_normed);
}

Tensor MlaAttention::project_queries_backward(const Tensor& dq, const Context& context) {
  if (linear_q_proj_) return linear_q_proj_->backward(dq, context.inp);
  Tensor dlatent_normed = linear_q_up_proj_->backward(dq, context.q_latent_normed);
  Tensor dlatent = q_layernorm_->backward(dlatent_normed, context.q_norm);
  return linear_q_down_proj_->backward(dlatent, context.inp);
}

Tensor MlaAttention::forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                             const Tensor& residual) const {
  const int64_t tokens = batch * seq, rows = tokens * heads_;
  const int64_t qk_dim = nope_dim_ + rope_dim_;
  context.batch = batch;
  context.seq = seq;
  context.inp = inp;

  // Queries: rotate the rope channels of each head in place of a copy.
  Tensor q = project_queries(inp, context);  // [N, H*(dn+dr)]
  Tensor q_pe = ops::empty_like(q, {tokens, heads_, rope_dim_});
  ops::copy_columns(q_pe, rope_dim_, 0, q, qk_dim, nope_dim_, rows, rope_dim_);
  q_pe = rotary_.forward(q_pe, batch, seq);
  ops::copy_columns(q, qk_dim, nope_dim_, q_pe, rope_dim_, 0, rows, rope_dim_);
  context.q = q.view({tokens, heads_, qk_dim});

  // Keys and values from the compressed latent and the shared rope key.
  const int64_t own_tokens = inp.size(0);
  Tensor kv_down = linear_kv_down_proj_.forward(inp);  // [n, kv_lora + dr]
  Tensor latent = ops::empty_like(kv_down, {own_tokens, kv_lora_rank_});
  Tensor k_pe = ops::empty_like(kv_down, {own_tokens, 1, rope_dim_});
  ops::copy_columns(latent, kv_lora_rank_, 0, kv_down, kv_lora_rank_ + rope_dim_, 0, own_tokens, kv_lora_rank_);
  ops::copy_columns(k_pe, rope_dim_, 0, kv_down, kv_lora_rank_ + rope_dim_, kv_lora_rank_, own_tokens, rope_dim_);
  k_pe = rotary_.forward(tp_.enter(k_pe), batch, seq);  // every token's
  context.kv_latent_normed = kv_layernorm_.forward(latent, context.kv_norm);
  Tensor kv = linear_kv_up_proj_.forward(context.kv_latent_normed);  // [N, H*(dn+dv)]
  context.k = ops::empty_like(kv, {tokens, heads_, qk_dim});
  context.v = ops::empty_like(kv, {tokens, heads_, v_dim_});
  ops::copy_columns(context.k, qk_dim, 0, kv, nope_dim_ + v_dim_, 0, rows, nope_dim_);
  ops::copy_columns(context.v, v_dim_, 0, kv, nope_dim_ + v_dim_, nope_dim_, rows, v_dim_);
  for (int64_t h = 0; h < heads_; ++h)
    ops::copy_columns(context.k, heads_ * qk_dim, h * qk_dim + nope_dim_, k_pe, rope_dim_, 0, tokens, rope_dim_);

  const ops::AttentionShape shape{batch, seq, heads_, heads_, qk_dim, v_dim_};
  context.attn = ops::empty_like(kv, {tokens, heads_ * v_dim_});
  context.lse = Tensor::empty({batch, heads_, seq}, ops::statistic_dtype(kv), kv.device());
  ops::causal_attention_forward(context.attn, context.lse, context.q, context.k, context.v, shape,
                                softmax_scale_);
  return linear_proj_.forward(context.attn, residual);
}

Tensor MlaAttention::backward(const Tensor& dout, const Context& context) {
  const int64_t batch = context.batch, seq = context.seq, tokens = batch * seq;
  const int64_t rows = tokens * heads_, qk_dim = nope_dim_ + rope_dim_;
  Tensor dattn = linear_proj_.backward(dout, context.attn);
  Tensor dq = ops::empty_like(dattn, {tokens, heads_ * qk_dim});
  Tensor dk = ops::empty_like(context.k);
  Tensor dv = ops::empty_like(context.v);
  const ops::AttentionShape shape{batch, seq, heads_, heads_, qk_dim, v_dim_};
  ops::causal_attention_backward(dq, dk, dv, dattn, context.q, context.k, context.v, context.attn, context.lse,
                                 shape, softmax_scale_);

  // Queries.
  Tensor dq_pe = ops::empty_like(dq, {tokens, heads_, rope_dim_});
  ops::copy_columns(dq_pe, rope_dim_, 0, dq, qk_dim, nope_dim_, rows, rope_dim_);
  dq_pe = rotary_.backward(dq_pe, batch, seq);
  ops::copy_columns(dq, qk_dim, nope_dim_, dq_pe, rope_dim_, 0, rows, rope_dim_);
  Tensor dinp = project_queries_backward(dq, context);

  // Keys and values: the shared rope key sums the gradients of every head.
  Tensor dkv = ops::empty_like(dk, {tokens, heads_ * (nope_dim_ + v_dim_)});
  ops::copy_columns(dkv, nope_dim_ + v_dim_, 0, dk, qk_dim, 0, rows, nope_dim_);
  ops::copy_columns(dkv, nope_dim_ + v_dim_, nope_dim_, dv, v_dim_, 0, rows, v_dim_);
  Tensor dk_pe = ops::empty_like(dk, {tokens, 1, rope_dim_});
  ops::zero_(dk_pe);
  for (int64_t h = 0; h < heads_; ++h)
    ops::add_columns(dk_pe, rope_dim_, 0, dk, heads_ * qk_dim, h * qk_dim + nope_dim_, tokens, rope_dim_);
  dk_pe = tp_.enter_backward(rotary_.backward(dk_pe, batch, seq));  // this rank's tokens
  Tensor dlatent_normed = linear_kv_up_proj_.backward(dkv, context.kv_latent_normed);
  Tensor dlatent = kv_layernorm_.backward(dlatent_normed, context.kv_norm);
  const int64_t own_tokens = context.inp.size(0);
  Tensor dkv_down = ops::empty_like(dlatent, {own_tokens, kv_lora_rank_ + rope_dim_});
  ops::copy_columns(dkv_down, kv_lora_rank_ + rope_dim_, 0, dlatent, kv_lora_rank_, 0, own_tokens, kv_lora_rank_);
  ops::copy_columns(dkv_down, kv_lora_rank_ + rope_dim_, kv_lora_rank_, dk_pe, rope_dim_, 0, own_tokens, rope_dim_);
  linear_kv_down_proj_.backward_accumulate(dinp, dkv_down, context.inp);
  return dinp;
}

void MlaAttention::collect(std::vector<Parameter*>& parameters) {
  if (linear_q_proj_) {
    linear_q_proj_->collect(parameters);
  } else {
    linear_q_down_proj_->collect(parameters);
    parameters.push_back(&q_layernorm_->weight);
    linear_q_up_proj_->collect(parameters);
  }
  linear_kv_down_proj_.collect(parameters);
  parameters.push_back(&kv_layernorm_.weight);
  linear_kv_up_proj_.collect(parameters);
  linear_proj_.collect(parameters);
}

}  // namespace moebench::model
