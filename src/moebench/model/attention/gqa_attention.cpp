#include "moebench/model/attention/gqa_attention.h"

#include <cmath>
#include <cstring>

#include "moebench/ops/attention.h"

namespace moebench::model {
namespace {

// Copies between the fused per-group qkv rows and separate q, k, v arrays;
// `to_fused` picks the direction so the split and its adjoint share one loop.
void copy_qkv(float* qkv, float* q, float* k, float* v, int64_t tokens, int64_t heads,
              int64_t groups, int64_t head_dim, bool to_fused) {
  const int64_t per_group = heads / groups;
  const int64_t row = groups * (per_group + 2) * head_dim;
  auto move = [&](float* fused, float* separate, int64_t count) {
    if (to_fused) std::memcpy(fused, separate, count * sizeof(float));
    else std::memcpy(separate, fused, count * sizeof(float));
  };
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t g = 0; g < groups; ++g) {
      float* base = qkv + t * row + g * (per_group + 2) * head_dim;
      move(base, q + (t * heads + g * per_group) * head_dim, per_group * head_dim);
      move(base + per_group * head_dim, k + (t * groups + g) * head_dim, head_dim);
      move(base + (per_group + 1) * head_dim, v + (t * groups + g) * head_dim, head_dim);
    }
  }
}

}  // namespace

GqaAttention::GqaAttention(const std::string& prefix, const config::ModelConfig& config,
                           uint64_t seed)
    : heads_(config.num_attention_heads),
      groups_(config.num_query_groups),
      head_dim_(config.kv_channels),
      linear_qkv_(prefix + ".linear_qkv", config.hidden_size,
                  (heads_ + 2 * groups_) * head_dim_, float(config.init_method_std), seed,
                  config.add_qkv_bias),
      linear_proj_(prefix + ".linear_proj", heads_ * head_dim_, config.hidden_size,
                   float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed),
      rotary_(head_dim_, config.rope, ops::RopeLayout::kHalf) {
  if (config.qk_layernorm) {
    q_layernorm_.emplace(prefix + ".q_layernorm.weight", head_dim_, config.norm_epsilon);
    k_layernorm_.emplace(prefix + ".k_layernorm.weight", head_dim_, config.norm_epsilon);
  }
}

Tensor GqaAttention::forward(const Tensor& inp, int64_t batch, int64_t seq,
                             Context& context) const {
  const int64_t tokens = batch * seq;
  context.batch = batch;
  context.seq = seq;
  context.inp = inp;
  Tensor qkv = linear_qkv_.forward(inp);
  Tensor q = Tensor::empty({tokens, heads_, head_dim_}, DType::F32);
  Tensor k = Tensor::empty({tokens, groups_, head_dim_}, DType::F32);
  Tensor v = Tensor::empty({tokens, groups_, head_dim_}, DType::F32);
  copy_qkv(qkv.data<float>(), q.data<float>(), k.data<float>(), v.data<float>(), tokens, heads_,
           groups_, head_dim_, false);
  if (q_layernorm_) {
    q = q_layernorm_->forward(q, context.q_norm);
    k = k_layernorm_->forward(k, context.k_norm);
  }
  context.q = rotary_.forward(q, batch, seq);
  context.k = rotary_.forward(k, batch, seq);
  context.v = v;
  const ops::AttentionShape shape{batch, seq, heads_, groups_, head_dim_, head_dim_};
  context.attn = Tensor::empty({tokens, heads_ * head_dim_}, DType::F32);
  context.lse = Tensor::empty({batch, heads_, seq}, DType::F32);
  ops::cpu::causal_attention_forward(context.attn.data<float>(), context.lse.data<float>(),
                                     context.q.data<float>(), context.k.data<float>(),
                                     context.v.data<float>(), shape);
  return linear_proj_.forward(context.attn);
}

Tensor GqaAttention::backward(const Tensor& dout, const Context& context) {
  const int64_t batch = context.batch, seq = context.seq, tokens = batch * seq;
  Tensor dattn = linear_proj_.backward(dout, context.attn);
  Tensor dq = Tensor::empty(context.q.shape(), DType::F32);
  Tensor dk = Tensor::empty(context.k.shape(), DType::F32);
  Tensor dv = Tensor::empty(context.v.shape(), DType::F32);
  const ops::AttentionShape shape{batch, seq, heads_, groups_, head_dim_, head_dim_};
  ops::cpu::causal_attention_backward(dq.data<float>(), dk.data<float>(), dv.data<float>(),
                                      dattn.data<float>(), context.q.data<float>(),
                                      context.k.data<float>(), context.v.data<float>(),
                                      context.attn.data<float>(), context.lse.data<float>(), shape);
  dq = rotary_.backward(dq, batch, seq);
  dk = rotary_.backward(dk, batch, seq);
  if (q_layernorm_) {
    dq = q_layernorm_->backward(dq, context.q_norm);
    dk = k_layernorm_->backward(dk, context.k_norm);
  }
  Tensor dqkv = Tensor::empty({tokens, (heads_ + 2 * groups_) * head_dim_}, DType::F32);
  copy_qkv(dqkv.data<float>(), dq.data<float>(), dk.data<float>(), dv.data<float>(), tokens,
           heads_, groups_, head_dim_, true);
  return linear_qkv_.backward(dqkv, context.inp);
}

void GqaAttention::collect(std::vector<Parameter*>& parameters) {
  linear_qkv_.collect(parameters);
  if (q_layernorm_) {
    parameters.push_back(&q_layernorm_->weight);
    parameters.push_back(&k_layernorm_->weight);
  }
  linear_proj_.collect(parameters);
}

}  // namespace moebench::model
