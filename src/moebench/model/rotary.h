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
#include "moebench/ops/qkv_heads.h"
#include "moebench/ops/rope.h"

namespace moebench::model {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, const config::RopeConfig& rope, ops::RopeLayout layout);

  // x [B*S, heads, head_dim] -> rotated copy.
  Tensor forward(const Tensor& x, int64_t batch, int64_t seq) const;
  // The transposed rotation of dout.
  Tensor backward(const Tensor& dout, int64_t batch, int64_t seq) const;
  // The table and positions of B*S tokens on like's device, for ops that
  // rotate on the way (ops::split_qkv / merge_qkv; the half layout).
  ops::QkvRotation rotation(int64_t batch, int64_t seq, const Tensor& like) const;

  // YaRN settings as HF spells them, or nullopt for plain RoPE.
  static std::optional<ops::YarnScaling> yarn_scaling(const config::RopeConfig& rope);

 private:
  const ops::RopeTable<float>& table(int64_t seq) const;
  Tensor apply(const Tensor& x, int64_t batch, int64_t seq, bool transposed) const;

  // The table with, for a CUDA x, its device copy (re-uploaded when the table grows).
  ops::RopeTableTensors table_tensors(int64_t seq, const Tensor& x) const;
  // Positions t % seq of the B*S tokens, on x's device (cached for the last shape).
  const Tensor& positions(int64_t batch, int64_t seq, const Tensor& x) const;

  int64_t head_dim_;
  config::RopeConfig rope_;
  ops::RopeLayout layout_;
  mutable std::optional<ops::RopeTable<float>> table_;  // grown to the longest sequence seen
  mutable Tensor device_cos_, device_sin_;               // table_ on a CUDA device, when used there
  mutable Tensor positions_;                             // the last positions(), on their device
  mutable int64_t positions_batch_ = 0, positions_seq_ = 0;
};

}  // namespace moebench::model
