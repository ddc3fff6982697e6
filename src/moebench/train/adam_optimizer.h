#pragma once
// Adam with decoupled weight decay over a model's parameters, as Megatron's
// "adam" optimizer: moments per parameter (fp32, or bf16 as
// AdamOptions::precision says), weight decay only where
// Parameter::weight_decay (norms and biases are excluded), gradients clipped
// by their global L2 norm before the update.
//
// Parameters on a CUDA device (a GPTModel built with ModelPlacement::cuda)
// are updated there in mixed precision: fp32 main weights (Parameter::main),
// fp32 gradients, one multi-tensor Adam launch per weight-decay group that
// also rewrites the bf16 compute weights; the gradient norm is a device
// reduction read back once per step.
#include <cstdint>
#include <memory>
#include <vector>

#include "moebench/dist/parallel_state.h"
#include "moebench/model/parameter.h"
#include "moebench/ops/adam.h"
#include "moebench/train/optimizer.h"

namespace moebench::train {

class AdamOptimizer final : public Optimizer {
 public:
  // Keeps the pointers: the parameters must outlive the optimizer. Each gets
  // zeroed moments of its own size, in options.precision's dtypes.
  // `parallel_state` (kept by reference; null: one rank) says over which
  // ranks the gradient norm is taken.
  AdamOptimizer(std::vector<model::Parameter*> parameters, const AdamOptions& options,
                const dist::ParallelState* parallel_state = nullptr);

  // Clips the gradients by the global norm (scaling them in place by
  // clip_grad / (norm + 1e-6) when that is below 1, as Megatron) and updates
  // every parameter with learning rate `lr`. When the norm is NaN or Inf the
  // parameters, moments and step count stay as they were.
  OptimizerStep step(double lr) override;

  // Global L2 norm of the current gradients, as Megatron's
  // get_grad_norm_fp32: data-parallel replicas hold the same (all-reduced)
  // gradients, so the squared sums are added over the ranks that hold
  // distinct ones: dense parameters over mp (tp-pp: each stage its layers,
  // each tp rank its slices; a parameter replicated over tp counted on tp
  // rank 0 only), routed experts over tp_ep_pp (each ep rank its experts).
  // Collective over those groups when they have several ranks.
  double gradient_norm() const;

  std::vector<ckpt::ShardedTensor> state_pieces() override;
  bool state_is_sharded() const override { return false; }
  int64_t steps_taken() const override { return steps_taken_; }
  void restore_steps_taken(int64_t steps) override { steps_taken_ = steps; }
  const std::vector<model::Parameter*>& parameters() const { return parameters_; }

 private:
  struct Moments {
    Tensor exp_avg;     // m, of the parameter's shape and device
    Tensor exp_avg_sq;  // v
  };

  std::vector<model::Parameter*> parameters_;
  std::vector<Moments> moments_;  // one per parameter, same order
  bool on_device_ = false;        // the parameters live on a CUDA device
  std::unique_ptr<ops::MultiTensorAdam> decayed_, not_decayed_;  // the two weight-decay groups (GPU)
  AdamOptions options_;
  const dist::ParallelState* parallel_state_;
  int64_t steps_taken_ = 0;
};

}  // namespace moebench::train
