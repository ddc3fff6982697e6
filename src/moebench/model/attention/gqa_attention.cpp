#include "moebench/model/attention/gqa_attention.h"

#include <cmath>
#include <string>

#include "moebench/core/error.h"

#include "moebench/ops/attention.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/qkv_heads.h"

namespace moebench::model {
namespace {

// The heads (or query groups) of one tp rank; throws when TP does not divide them.
int64_t per_rank(int64_t count, const char* what, const dist::TensorParallelRegions& tp) {
  if (count % tp.size() != 0)
    throw Error(std::string(what) + " " + std::to_string(count) + " is not divisible by TP=" +
                std::to_string(tp.size()) + "; choose a TP that divides it");
  return count / tp.size();
}

}  // namespace

GqaAttention::GqaAttention(const std::string& prefix, const config::ModelConfig& config,
                           uint64_t seed, const dist::TensorParallelRegions& tp)
    : heads_(per_rank(config.num_attention_heads, "num-attention-heads", tp)),
      groups_(per_rank(config.num_query_groups, "num-query-groups", tp)),
      head_dim_(config.kv_channels),
      linear_qkv_(prefix + ".linear_qkv", config.hidden_size,
                  int64_t(config.num_attention_heads + 2 * config.num_query_groups) * head_dim_,
                  float(config.init_method_std), seed, tp, config.add_qkv_bias),
      linear_proj_(prefix + ".linear_proj", int64_t(config.num_attention_heads) * head_dim_, config.hidden_size,
                   float(config.init_method_std / std::sqrt(2.0 * config.num_layers)), seed, tp),
      rotary_(head_dim_, config.rope, ops::RopeLayout::kHalf) {
  if (config.qk_layernorm) {
    q_layernorm_.emplace(prefix + ".q_layernorm.weight", head_dim_, config.norm_epsilon);
    k_layernorm_.emplace(prefix + ".k_layernorm.weight", head_dim_, config.norm_epsilon);
    // Shared by all heads, each rank's gradient covers its own heads only.
    q_layernorm_->weight.grad_partial_over_tp = tp.is_parallel();
    k_layernorm_->weight.grad_partial_over_tp = tp.is_parallel();
  }
}

Tensor GqaAttention::forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                             const Tensor& residual) const {
  const int64_t tokens = batch * seq;
  context.batch = batch;
  context.seq = seq;
  context.inp = inp;
  Tensor qkv = linear_qkv_.forward(inp);  // every token, this rank's groups
  Tensor q = ops::empty_like(qkv, {tokens, heads_, head_dim_});
  Tensor k = ops::empty_like(qkv, {tokens, groups_, head_dim_});
  Tensor v = ops::empty_like(qkv, {tokens, groups_, head_dim_});
  if (q_layernorm_) {  // Qwen3: normalised before the rotation
    ops::split_qkv(q, k, v, qkv, nullptr);
    context.q = rotary_.forward(q_layernorm_->forward(q, context.q_norm), batch, seq);
    context.k = rotary_.forward(k_layernorm_->forward(k, context.k_norm), batch, seq);
  } else {
    const ops::QkvRotation rotation = rotary_.rotation(batch, seq, qkv);
    ops::split_qkv(q, k, v, qkv, &rotation);
    context.q = q;
    context.k = k;
  }
  context.v = v;
  const ops::AttentionShape shape{batch, seq, heads_, groups_, head_dim_, head_dim_};
  context.attn = ops::empty_like(qkv, {tokens, heads_ * head_dim_});
  context.lse = Tensor::empty({batch, heads_, seq}, ops::statistic_dtype(qkv), qkv.device());
  ops::causal_attention_forward(context.attn, context.lse, context.q, context.k, context.v, shape);
  return linear_proj_.forward(context.attn, residual);
}

Tensor GqaAttention::backward(const Tensor& dout, const Context& context) {
  const int64_t batch = context.batch, seq = context.seq, tokens = batch * seq;
  Tensor dattn = linear_proj_.backward(dout, context.attn);
  Tensor dq = ops::empty_like(context.q);
  Tensor dk = ops::empty_like(context.k);
  Tensor dv = ops::empty_like(context.v);
  const ops::AttentionShape shape{batch, seq, heads_, groups_, head_dim_, head_dim_};
  ops::causal_attention_backward(dq, dk, dv, dattn, context.q, context.k, context.v, context.attn,
                                 context.lse, shape);
  Tensor dqkv = ops::empty_like(dq, {tokens, (heads_ + 2 * groups_) * head_dim_});
  if (q_layernorm_) {
    dq = q_layernorm_->backward(rotary_.backward(dq, batch, seq), context.q_norm);
    dk = k_layernorm_->backward(rotary_.backward(dk, batch, seq), context.k_norm);
    ops::merge_qkv(dqkv, dq, dk, dv, nullptr);
  } else {
    const ops::QkvRotation rotation = rotary_.rotation(batch, seq, dq);
    ops::merge_qkv(dqkv, dq, dk, dv, &rotation);
  }
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
