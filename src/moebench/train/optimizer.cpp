#include "moebench/train/optimizer.h"

namespace moebench::train {

std::string exp_avg_name(const std::string& parameter) { return "optimizer.exp_avg." + parameter; }
std::string exp_avg_sq_name(const std::string& parameter) { return "optimizer.exp_avg_sq." + parameter; }

double clip_factor(double grad_norm, double clip_grad) {
  if (clip_grad <= 0) return 1.0;
  const double factor = clip_grad / (grad_norm + 1e-6);
  return factor < 1.0 ? factor : 1.0;
}

ops::AdamHyperparams adam_hyperparams(const AdamOptions& options, double lr, bool weight_decay, double grad_scale) {
  ops::AdamHyperparams hyperparams;
  hyperparams.lr = lr;
  hyperparams.beta1 = options.beta1;
  hyperparams.beta2 = options.beta2;
  hyperparams.eps = options.eps;
  hyperparams.weight_decay = weight_decay ? options.weight_decay : 0.0;
  hyperparams.grad_scale = grad_scale;
  return hyperparams;
}

}  // namespace moebench::train
