#pragma once
// Adam with decoupled weight decay over a model's parameters, as Megatron's
// "adam" optimizer: fp32 moments per parameter, weight decay only where
// Parameter::weight_decay (norms and biases are excluded), gradients clipped
// by their global L2 norm before the update.
#include <cstdint>
#include <vector>

#include "moebench/model/parameter.h"
#include "moebench/train/optimizer.h"

namespace moebench::train {

class AdamOptimizer final : public Optimizer {
 public:
  // Keeps the pointers: the parameters must outlive the optimizer. Each gets
  // zeroed fp32 moments of its own size.
  AdamOptimizer(std::vector<model::Parameter*> parameters, const AdamOptions& options);

  // Clips the gradients by the global norm (scaling them in place by
  // clip_grad / (norm + 1e-6) when that is below 1, as Megatron) and updates
  // every parameter with learning rate `lr`. When the norm is NaN or Inf the
  // parameters, moments and step count stay as they were.
  OptimizerStep step(double lr) override;

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
