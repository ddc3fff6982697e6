#pragma once
// What the trainer asks of an optimizer, and the Adam settings and rules that
// moebench's two optimizers share: AdamOptimizer (every rank updates every
// parameter) and DistributedOptimizer (each data-parallel rank its shard).
#include <cstdint>
#include <vector>

#include "moebench/ckpt/native_checkpoint.h"

#include "moebench/ops/adam.h"
#include "moebench/train/optimizer_precision.h"

namespace moebench::train {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to parameters with weight_decay = true
  double clip_grad = 1.0;     // max global gradient norm; 0 turns clipping off
  OptimizerPrecision precision;  // the dtypes of m and v
};

struct OptimizerStep {
  bool applied = false;   // false: the gradient norm was NaN/Inf and nothing changed
  double grad_norm = 0;   // global L2 norm of the gradients before clipping
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Clips the gradients by their global norm and updates the parameters with
  // learning rate `lr`; changes nothing when the norm is NaN or Inf.
  virtual OptimizerStep step(double lr) = 0;

  // Adam's moments for checkpoints, named optimizer.exp_avg.<parameter> and
  // optimizer.exp_avg_sq.<parameter>: views of the state in its own dtype, so
  // reading a checkpoint into them restores it (converting a checkpoint saved
  // with other moment dtypes). Only what this rank updates.
  virtual std::vector<ckpt::ShardedTensor> state_pieces() = 0;
  // True when data-parallel ranks hold different pieces (each must save its own).
  virtual bool state_is_sharded() const = 0;
  virtual int64_t steps_taken() const = 0;
  // Adam's bias correction continues from `steps` after a resume.
  virtual void restore_steps_taken(int64_t steps) = 0;
};

// The checkpoint names of a parameter's Adam moments.
std::string exp_avg_name(const std::string& parameter);
std::string exp_avg_sq_name(const std::string& parameter);

// Megatron's clipping factor: clip_grad / (grad_norm + 1e-6) when that is
// below 1, else 1 (and 1 when clip_grad is 0, clipping off).
double clip_factor(double grad_norm, double clip_grad);

// The hyper-parameters of one Adam update of a parameter, with the weight
// decay only where it applies and the gradients scaled by `grad_scale` (the
// clipping factor) as the step reads them.
ops::AdamHyperparams adam_hyperparams(const AdamOptions& options, double lr, bool weight_decay, double grad_scale);

}  // namespace moebench::train
