#include "moebench/train/adam_optimizer.h"

#include <cmath>
#include <utility>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

void check_parameter(const model::Parameter& p) {
  const bool usable = p.value.defined() && p.grad.defined() && p.value.dtype() == DType::F32 &&
                      p.grad.dtype() == DType::F32 && p.value.is_contiguous() && p.grad.is_contiguous() &&
                      p.value.device().is_cpu() && p.grad.device().is_cpu() && p.value.shape() == p.grad.shape();
  if (!usable)
    throw Error("AdamOptimizer: parameter '" + p.name + "' needs contiguous float32 CPU value and grad of one shape, got " +
                (p.value.defined() ? p.value.describe() : "undefined") + " and " +
                (p.grad.defined() ? p.grad.describe() : "undefined"));
}

}  // namespace

AdamOptimizer::AdamOptimizer(std::vector<model::Parameter*> parameters, const AdamOptions& options)
    : parameters_(std::move(parameters)), options_(options) {
  moments_.reserve(parameters_.size());
  for (const model::Parameter* p : parameters_) {
    check_parameter(*p);
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

  if (options_.clip_grad > 0) {
    const double clip_coefficient = options_.clip_grad / (result.grad_norm + 1e-6);
    if (clip_coefficient < 1.0) {
      for (model::Parameter* p : parameters_) {
        float* grad = p->grad.data<float>();
        for (int64_t i = 0, n = p->grad.numel(); i < n; ++i) grad[i] = float(grad[i] * clip_coefficient);
      }
    }
  }

  ++steps_taken_;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    model::Parameter& p = *parameters_[k];
    ops::AdamHyperparams hyperparams;
    hyperparams.lr = lr;
    hyperparams.beta1 = options_.beta1;
    hyperparams.beta2 = options_.beta2;
    hyperparams.eps = options_.eps;
    hyperparams.weight_decay = p.weight_decay ? options_.weight_decay : 0.0;
    ops::cpu::adamw_step(p.value.data<float>(), moments_[k].exp_avg.data(), moments_[k].exp_avg_sq.data(),
                         p.grad.data<float>(), p.value.numel(), steps_taken_, hyperparams);
  }
  result.applied = true;
  return result;
}

}  // namespace moebench::train
