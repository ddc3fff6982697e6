#pragma once
// Megatron's distributed optimizer (--use-distributed-optimizer, ZeRO-1):
// Adam whose state is sharded over the data-parallel ranks. Each rank owns
// the shard of every bucket that GradientReduction's reduce-scatter leaves
// it (1/DP of the flattened, padded parameters) and keeps fp32 main weights
// and Adam's m and v only for that shard. A step:
//   1. the global gradient norm from the owned shards, squared sums
//      all-reduced over every rank (each element is owned exactly once);
//   2. clipping and the Adam update of the owned shard;
//   3. an all-gather per bucket, so every rank has all updated parameters.
// It updates the same weights as AdamOptimizer over all-reduced gradients.
//
// The CPU engine's parameters are float32, so the main weights are the owned
// range of the parameter buffer itself, as Megatron does for fp32 parameters;
// bf16 parameters will keep a separate fp32 copy of the shard. m and v are in
// AdamOptions::precision's dtypes (fp32, or bf16 with the precision-aware optimizer).
#include <cstdint>
#include <vector>

#include "moebench/dist/parallel_state.h"
#include "moebench/train/gradient_reduction.h"
#include "moebench/train/optimizer.h"

namespace moebench::train {

class DistributedOptimizer final : public Optimizer {
 public:
  // `gradients` must reduce-scatter (GradientSync::kReduceScatter). Keeps
  // references: both must outlive the optimizer.
  DistributedOptimizer(const GradientReduction& gradients, const dist::ParallelState& state,
                       const AdamOptions& options);

  // Collective over every rank. Expects reduce-scattered gradients.
  OptimizerStep step(double lr) override;

  // Global L2 norm of the gradients: collective over every rank.
  double gradient_norm() const;

  std::vector<ckpt::ShardedTensor> state_pieces() override;
  bool state_is_sharded() const override { return true; }
  int64_t steps_taken() const override { return steps_taken_; }
  void restore_steps_taken(int64_t steps) override { steps_taken_ = steps; }

 private:
  // Adam's state of one owned run of one parameter.
  struct ShardState {
    ShardSegment segment;
    Tensor exp_avg;     // m [n], as segment.values
    Tensor exp_avg_sq;  // v [n]
  };
  void gather_parameters(const ParamAndGradBuffer& buffer, dist::Communicator& group) const;

  const GradientReduction& gradients_;
  const dist::ParallelState& state_;
  AdamOptions options_;
  std::vector<ShardState> shards_;  // dense shards, then expert shards
  int64_t steps_taken_ = 0;
};

}  // namespace moebench::train
