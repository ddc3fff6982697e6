#pragma once
// The model's rotary position embedding: one cos/sin table (plain RoPE or
// YaRN) applied to heads laid out as [B*S, heads, head_dim], token b*S + s at
// position s. GQA rotates the first rotary_percent of each head in the half
// layout (HF rotate_half); MLA rotates its decoupled rope channels in
// DeepSeek's interleaved layout, as the hub checkpoints expect.
#include <cstdint>
#include <optional>

#include "moebench/config/model_config.h"
#include "moebench/core/tensor.h"
#include "moebench/ops/rope.h"

namespace moebench::model {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, const config::RopeConfig& rope, ops::RopeLayout layout);

  // x [B*S, heads, head_dim] -> rotated copy.
  Tensor forward(const Tensor& x, int64_t batch, int64_t seq) const;
  // The transposed rotation of dout.
  Tensor backward(const Tensor& dout, int64_t batch, int64_t seq) const;

  // YaRN settings as HF spells them, or nullopt for plain RoPE.
  static std::optional<ops::YarnScaling> yarn_scaling(const config::RopeConfig& rope);

 private:
  const ops::RopeTable<float>& table(int64_t seq) const;
  Tensor apply(const Tensor& x, int64_t batch, int64_t seq, bool transposed) const;

  int64_t head_dim_;
  config::RopeConfig rope_;
  ops::RopeLayout layout_;
  mutable std::optional<ops::RopeTable<float>> table_;  // grown to the longest sequence seen
};

}  // namespace moebench::model
