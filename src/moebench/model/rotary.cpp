#include "moebench/model/rotary.h"

#include <vector>

namespace moebench::model {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, const config::RopeConfig& rope,
                                 ops::RopeLayout layout)
    : head_dim_(head_dim), rope_(rope), layout_(layout) {}

std::optional<ops::YarnScaling> RotaryEmbedding::yarn_scaling(const config::RopeConfig& rope) {
  if (!rope.yarn) return std::nullopt;
  ops::YarnScaling yarn;
  yarn.factor = rope.scaling_factor;
  yarn.original_max_positions = rope.original_max_positions;
  yarn.beta_fast = rope.beta_fast;
  yarn.beta_slow = rope.beta_slow;
  yarn.mscale = rope.mscale;
  yarn.mscale_all_dim = rope.mscale_all_dim;
  return yarn;
}

const ops::RopeTable<float>& RotaryEmbedding::table(int64_t seq) const {
  if (!table_ || table_->num_positions < seq)
    table_.emplace(head_dim_, rope_.base, seq, rope_.percent, yarn_scaling(rope_));
  return *table_;
}

Tensor RotaryEmbedding::apply(const Tensor& x, int64_t batch, int64_t seq, bool transposed) const {
  const int64_t tokens = batch * seq;
  const int64_t heads = x.numel() / (tokens * head_dim_);
  std::vector<int64_t> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) positions[t] = t % seq;
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  if (transposed) {
    ops::cpu::rope_backward(out.data<float>(), x.data<float>(), table(seq), positions.data(),
                            tokens, heads, head_dim_, layout_);
  } else {
    ops::cpu::rope_forward(out.data<float>(), x.data<float>(), table(seq), positions.data(),
                           tokens, heads, head_dim_, layout_);
  }
  return out;
}

Tensor RotaryEmbedding::forward(const Tensor& x, int64_t batch, int64_t seq) const {
  return apply(x, batch, seq, false);
}

Tensor RotaryEmbedding::backward(const Tensor& dout, int64_t batch, int64_t seq) const {
  return apply(dout, batch, seq, true);
}

}  // namespace moebench::model
