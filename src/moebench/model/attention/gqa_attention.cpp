#include "moebench/model/attention/gqa_attention.h"

#include <cmath>
#include <string>

#include "moebench/core/error.h"

#include "moebench/ops/attention.h"
#include "moebench/ops/elementwise.h"

namespace moebench::model {
namespace {

// Copies between the fused per-group qkv rows and separate q, k, v arrays;
// `to_fused` picks the direction so the split and its adjoint share one loop.
void copy_qkv(Tensor& qkv, Tensor& q, Tensor& k, Tensor& v, int64_t tokens, int64_t heads,
              int64_t groups, int64_t head_dim, bool to_fused) {
  const int64_t per_group = heads / groups;
  const int64_t row = groups * (per_group + 2) * head_dim;
  auto move = [&](int64_t fused_col, Tensor& separate, int64_t separate_width, int64_t separate_col,
                  int64_t count) {
    if (to_fused) {
      ops::copy_columns(qkv, row, fused_col, separate, separate_width, separate_col, tokens, count);
    } else {
      ops::copy_columns(separate, separate_width, separate_col, qkv, row, fused_col, tokens, count);
    }
  };
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t base = g * (per_group + 2) * head_dim;
    move(base, q, heads * head_dim, g * per_group * head_dim, per_group * head_dim);
    move(base + per_group * head_dim, k, groups * head_dim, g * head_dim, head_dim);
    move(base + (per_group + 1) * head_dim, v, groups * head_dim, g * head_dim, head_dim);
  }
}

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
  copy_qkv(qkv, q, k, v, tokens, heads_, groups_, head_dim_, false);
  if (q_layernorm_) {
    q = q_layernorm_->forward(q, context.q_norm);
    k = k_layernorm_->forward(k, context.k_norm);
  }
  context.q = rotary_.forward(q, batch, seq);
  context.k = rotary_.forward(k, batch, seq);
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
  dq = rotary_.backward(dq, batch, seq);
  dk = rotary_.backward(dk, batch, seq);
  if (q_layernorm_) {
    dq = q_layernorm_->backward(dq, context.q_norm);
    dk = k_layernorm_->backward(dk, context.k_norm);
  }
  Tensor dqkv = ops::empty_like(dq, {tokens, (heads_ + 2 * groups_) * head_dim_});
  copy_qkv(dqkv, dq, dk, dv, tokens, heads_, groups_, head_dim_, true);
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
