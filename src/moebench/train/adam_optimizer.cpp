#include "moebench/train/adam_optimizer.h"

#include <cmath>
#include <utility>

#include "moebench/train/parameter_check.h"

namespace moebench::train {

AdamOptimizer::AdamOptimizer(std::vector<model::Parameter*> parameters, const AdamOptions& options)
    : parameters_(std::move(parameters)), options_(options) {
  moments_.reserve(parameters_.size());
  for (const model::Parameter* p : parameters_) {
    require_cpu_float32(*p, "AdamOptimizer");
    const size_t n = size_t(p->value.numel());
    moments_.push_back({std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)});
  }
}

double AdamOptimizer::gradient_norm() const {
  double squares = 0;
  for (const model::Parameter* p : parameters_) {
    const float* grad = p->grad.data<float>();
    for (int64_t i = 0, n = p->grad.numel(); i < n; ++i) squares += double(grad[i]) * double(grad[i]);
  }
  // Data-parallel gradients are identical after their all-reduce; model-parallel
  // shards will add their squared sums here before the square root.
  return std::sqrt(squares);
}

OptimizerStep AdamOptimizer::step(double lr) {
  OptimizerStep result;
  result.grad_norm = gradient_norm();
  if (!std::isfinite(result.grad_norm)) return result;

  const double clip = clip_factor(result.grad_norm, options_.clip_grad);
  if (clip < 1.0) {
    for (model::Parameter* p : parameters_) {
      float* grad = p->grad.data<float>();
      for (int64_t i = 0, n = p->grad.numel(); i < n; ++i) grad[i] = float(grad[i] * clip);
    }
  }

  ++steps_taken_;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    model::Parameter& p = *parameters_[k];
    ops::cpu::adamw_step(p.value.data<float>(), moments_[k].exp_avg.data(), moments_[k].exp_avg_sq.data(),
                         p.grad.data<float>(), p.value.numel(), steps_taken_,
                         adam_hyperparams(options_, lr, p.weight_decay));
  }
  result.applied = true;
  return result;
}

}  // namespace moebench::train
