#pragma once
// Adam with decoupled weight decay over a model's parameters, as Megatron's
// "adam" optimizer: fp32 moments per parameter, weight decay only where
// Parameter::weight_decay (norms and biases are excluded), gradients clipped
// by their global L2 norm before the update.
#include <cstdint>
#include <vector>

#include "moebench/model/parameter.h"
#include "moebench/ops/adam.h"

namespace moebench::train {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to parameters with weight_decay = true
  double clip_grad = 1.0;     // max global gradient norm; 0 turns clipping off
};

struct OptimizerStep {
  bool applied = false;   // false: the gradient norm was NaN/Inf and nothing changed
  double grad_norm = 0;   // global L2 norm of the gradients before clipping
};

class AdamOptimizer {
 public:
  // Keeps the pointers: the parameters must outlive the optimizer. Each gets
  // zeroed fp32 moments of its own size.
  AdamOptimizer(std::vector<model::Parameter*> parameters, const AdamOptions& options);

  // Clips the gradients by the global norm (scaling them in place by
  // clip_grad / (norm + 1e-6) when that is below 1, as Megatron) and updates
  // every parameter with learning rate `lr`. When the norm is NaN or Inf the
  // parameters, moments and step count stay as they were.
  OptimizerStep step(double lr);

  // Global L2 norm of the current gradients. With data or model parallelism
  // the squared sum is reduced over the ranks that hold distinct gradients.
  double gradient_norm() const;

  int64_t steps_taken() const { return steps_taken_; }
  const std::vector<model::Parameter*>& parameters() const { return parameters_; }

 private:
  struct Moments {
    std::vector<float> exp_avg;     // m
    std::vector<float> exp_avg_sq;  // v
  };

  std::vector<model::Parameter*> parameters_;
  std::vector<Moments> moments_;  // one per parameter, same order
  AdamOptions options_;
  int64_t steps_taken_ = 0;
};

}  // namespace moebench::train
