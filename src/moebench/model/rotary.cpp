#include "moebench/model/rotary.h"

#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"

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

ops::RopeTableTensors RotaryEmbedding::table_tensors(int64_t seq, const Tensor& x) const {
  const bool grown = !table_ || table_->num_positions < seq;
  ops::RopeTableTensors tensors{&table(seq), Tensor(), Tensor()};
  if (!x.device().is_cuda()) return tensors;
  if (grown || !device_cos_.defined() || device_cos_.device() != x.device()) {
    const int64_t half = table_->rot_dim / 2;
    device_cos_ = ops::to_device_of(Tensor::from_vector(table_->cos, {table_->num_positions, half}), x);
    device_sin_ = ops::to_device_of(Tensor::from_vector(table_->sin, {table_->num_positions, half}), x);
  }
  tensors.cos = device_cos_;
  tensors.sin = device_sin_;
  return tensors;
}

const Tensor& RotaryEmbedding::positions(int64_t batch, int64_t seq, const Tensor& x) const {
  if (positions_.defined() && positions_batch_ == batch && positions_seq_ == seq &&
      positions_.device() == x.device())
    return positions_;
  const int64_t tokens = batch * seq;
  std::vector<int64_t> host(tokens);
  for (int64_t t = 0; t < tokens; ++t) host[t] = t % seq;
  positions_ = ops::to_device_of(Tensor::from_vector(host), x);
  positions_batch_ = batch;
  positions_seq_ = seq;
  return positions_;
}

Tensor RotaryEmbedding::apply(const Tensor& x, int64_t batch, int64_t seq, bool transposed) const {
  const ops::RopeTableTensors tensors = table_tensors(seq, x);
  const Tensor& token_positions = positions(batch, seq, x);
  Tensor out = ops::empty_like(x);
  if (transposed) {
    ops::rope_backward(out, x, tensors, token_positions, head_dim_, layout_);
  } else {
    ops::rope_forward(out, x, tensors, token_positions, head_dim_, layout_);
  }
  return out;
}

Tensor RotaryEmbedding::forward(const Tensor& x, int64_t batch, int64_t seq) const {
  return apply(x, batch, seq, false);
}

Tensor RotaryEmbedding::backward(const Tensor& dout, int64_t batch, int64_t seq) const {
  return apply(dout, batch, seq, true);
}

ops::QkvRotation RotaryEmbedding::rotation(int64_t batch, int64_t seq, const Tensor& like) const {
  if (layout_ != ops::RopeLayout::kHalf)
    throw Error("RotaryEmbedding::rotation: only the half layout rotates inside ops::split_qkv / merge_qkv");
  return {table_tensors(seq, like), positions(batch, seq, like)};
}

}  // namespace moebench::model
