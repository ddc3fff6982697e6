#include "moebench/model/attention/mla_attention.h"

#include <cmath>
#include <cstring>

#include "moebench/model/elementwise.h"
#include "moebench/ops/attention.h"

namespace moebench::model {
namespace {

// dst[r, dst_col + i] = src[r, src_col + i] for i < count, over `rows` rows.
void copy_columns(float* dst, int64_t dst_width, int64_t dst_col, const float* src,
                  int64_t src_width, int64_t src_col, int64_t rows, int64_t count) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_width + dst_col, src + r * src_width + src_col,
                count * sizeof(float));
}

config::RopeConfig full_rotation(config::RopeConfig rope) {
  rope.percent = 1.0;  // the decoupled rope channels are rotated entirely
  return rope;
}

}  // namespace

MlaAttention::MlaAttention(const std::string& prefix, const config::ModelConfig& config,
                           uint64_t seed)
    : heads_(config.num_attention_heads),
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
                         heads_ * (nope_dim_ + v_dim_), float(config.init_method_std), seed),
      linear_proj_(prefix + ".linear_proj", heads_ * v_dim_, config.hidden_size,
                   float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed),
      rotary_(rope_dim_, full_rotation(config.rope), ops::RopeLayout::kInterleaved) {
  const int64_t q_width = heads_ * (nope_dim_ + rope_dim_);
  const float std = float(config.init_method_std);
  const int64_t q_lora = config.mla.q_lora_rank;
  if (q_lora == 0) {
    linear_q_proj_.emplace(prefix + ".linear_q_proj", config.hidden_size, q_width, std, seed);
  } else {
    linear_q_down_proj_.emplace(prefix + ".linear_q_down_proj", config.hidden_size, q_lora, std,
                                seed);
    q_layernorm_.emplace(prefix + ".linear_q_up_proj.layer_norm_weight", q_lora,
                         config.norm_epsilon);
    linear_q_up_proj_.emplace(prefix + ".linear_q_up_proj", q_lora, q_width, std, seed);
  }
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

Tensor MlaAttention::forward(const Tensor& inp, int64_t batch, int64_t seq,
                             Context& context) const {
  const int64_t tokens = batch * seq, rows = tokens * heads_;
  const int64_t qk_dim = nope_dim_ + rope_dim_;
  context.batch = batch;
  context.seq = seq;
  context.inp = inp;

  // Queries: rotate the rope channels of each head in place of a copy.
  Tensor q = project_queries(inp, context);  // [N, H*(dn+dr)]
  Tensor q_pe = Tensor::empty({tokens, heads_, rope_dim_}, DType::F32);
  copy_columns(q_pe.data<float>(), rope_dim_, 0, q.data<float>(), qk_dim, nope_dim_, rows,
               rope_dim_);
  q_pe = rotary_.forward(q_pe, batch, seq);
  copy_columns(q.data<float>(), qk_dim, nope_dim_, q_pe.data<float>(), rope_dim_, 0, rows,
               rope_dim_);
  context.q = q.view({tokens, heads_, qk_dim});

  // Keys and values from the compressed latent and the shared rope key.
  Tensor kv_down = linear_kv_down_proj_.forward(inp);  // [N, kv_lora + dr]
  Tensor latent = Tensor::empty({tokens, kv_lora_rank_}, DType::F32);
  Tensor k_pe = Tensor::empty({tokens, 1, rope_dim_}, DType::F32);
  copy_columns(latent.data<float>(), kv_lora_rank_, 0, kv_down.data<float>(),
               kv_lora_rank_ + rope_dim_, 0, tokens, kv_lora_rank_);
  copy_columns(k_pe.data<float>(), rope_dim_, 0, kv_down.data<float>(), kv_lora_rank_ + rope_dim_,
               kv_lora_rank_, tokens, rope_dim_);
  k_pe = rotary_.forward(k_pe, batch, seq);
  context.kv_latent_normed = kv_layernorm_.forward(latent, context.kv_norm);
  Tensor kv = linear_kv_up_proj_.forward(context.kv_latent_normed);  // [N, H*(dn+dv)]
  context.k = Tensor::empty({tokens, heads_, qk_dim}, DType::F32);
  context.v = Tensor::empty({tokens, heads_, v_dim_}, DType::F32);
  copy_columns(context.k.data<float>(), qk_dim, 0, kv.data<float>(), nope_dim_ + v_dim_, 0, rows,
               nope_dim_);
  copy_columns(context.v.data<float>(), v_dim_, 0, kv.data<float>(), nope_dim_ + v_dim_,
               nope_dim_, rows, v_dim_);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads_; ++h)
      std::memcpy(context.k.data<float>() + (t * heads_ + h) * qk_dim + nope_dim_,
                  k_pe.data<float>() + t * rope_dim_, rope_dim_ * sizeof(float));

  const ops::AttentionShape shape{batch, seq, heads_, heads_, qk_dim, v_dim_};
  context.attn = Tensor::empty({tokens, heads_ * v_dim_}, DType::F32);
  context.lse = Tensor::empty({batch, heads_, seq}, DType::F32);
  ops::cpu::causal_attention_forward(context.attn.data<float>(), context.lse.data<float>(),
                                     context.q.data<float>(), context.k.data<float>(),
                                     context.v.data<float>(), shape, softmax_scale_);
  return linear_proj_.forward(context.attn);
}

Tensor MlaAttention::backward(const Tensor& dout, const Context& context) {
  const int64_t batch = context.batch, seq = context.seq, tokens = batch * seq;
  const int64_t rows = tokens * heads_, qk_dim = nope_dim_ + rope_dim_;
  Tensor dattn = linear_proj_.backward(dout, context.attn);
  Tensor dq = Tensor::empty({tokens, heads_ * qk_dim}, DType::F32);
  Tensor dk = Tensor::empty(context.k.shape(), DType::F32);
  Tensor dv = Tensor::empty(context.v.shape(), DType::F32);
  const ops::AttentionShape shape{batch, seq, heads_, heads_, qk_dim, v_dim_};
  ops::cpu::causal_attention_backward(
      dq.data<float>(), dk.data<float>(), dv.data<float>(), dattn.data<float>(),
      context.q.data<float>(), context.k.data<float>(), context.v.data<float>(),
      context.attn.data<float>(), context.lse.data<float>(), shape, softmax_scale_);

  // Queries.
  Tensor dq_pe = Tensor::empty({tokens, heads_, rope_dim_}, DType::F32);
  copy_columns(dq_pe.data<float>(), rope_dim_, 0, dq.data<float>(), qk_dim, nope_dim_, rows,
               rope_dim_);
  dq_pe = rotary_.backward(dq_pe, batch, seq);
  copy_columns(dq.data<float>(), qk_dim, nope_dim_, dq_pe.data<float>(), rope_dim_, 0, rows,
               rope_dim_);
  Tensor dinp = project_queries_backward(dq, context);

  // Keys and values: the shared rope key sums the gradients of every head.
  Tensor dkv = Tensor::empty({tokens, heads_ * (nope_dim_ + v_dim_)}, DType::F32);
  copy_columns(dkv.data<float>(), nope_dim_ + v_dim_, 0, dk.data<float>(), qk_dim, 0, rows,
               nope_dim_);
  copy_columns(dkv.data<float>(), nope_dim_ + v_dim_, nope_dim_, dv.data<float>(), v_dim_, 0, rows,
               v_dim_);
  Tensor dk_pe = Tensor::zeros({tokens, 1, rope_dim_}, DType::F32);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads_; ++h)
      for (int64_t i = 0; i < rope_dim_; ++i)
        dk_pe.data<float>()[t * rope_dim_ + i] +=
            dk.data<float>()[(t * heads_ + h) * qk_dim + nope_dim_ + i];
  dk_pe = rotary_.backward(dk_pe, batch, seq);
  Tensor dlatent_normed = linear_kv_up_proj_.backward(dkv, context.kv_latent_normed);
  Tensor dlatent = kv_layernorm_.backward(dlatent_normed, context.kv_norm);
  Tensor dkv_down = Tensor::empty({tokens, kv_lora_rank_ + rope_dim_}, DType::F32);
  copy_columns(dkv_down.data<float>(), kv_lora_rank_ + rope_dim_, 0, dlatent.data<float>(),
               kv_lora_rank_, 0, tokens, kv_lora_rank_);
  copy_columns(dkv_down.data<float>(), kv_lora_rank_ + rope_dim_, kv_lora_rank_,
               dk_pe.data<float>(), rope_dim_, 0, tokens, rope_dim_);
  add_into(dinp, linear_kv_down_proj_.backward(dkv_down, context.inp));
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
