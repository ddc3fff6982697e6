#include "moebench/ops/adam.h"

#include <cmath>
#include <string>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {

template <typename T>
void adamw_step(T* param, T* exp_avg, T* exp_avg_sq, const T* grad, std::int64_t n,
                std::int64_t step, const AdamHyperparams& hyperparams) {
  if (step < 1) {
    throw Error("adamw_step: step " + std::to_string(step) +
                " is not a valid update count; steps count from 1 (the first update)");
  }
  // Scalars are formed in double, as FusedAdam forms them on the host.
  const double step_d = static_cast<double>(step);
  const T bias_correction1 = T(1.0 - std::pow(hyperparams.beta1, step_d));
  const T bias_correction2 = T(1.0 - std::pow(hyperparams.beta2, step_d));
  const T lr = T(hyperparams.lr);
  const T beta1 = T(hyperparams.beta1);
  const T beta2 = T(hyperparams.beta2);
  const T eps = T(hyperparams.eps);
  const T weight_decay = T(hyperparams.weight_decay);
  for (std::int64_t i = 0; i < n; ++i) {
    const T g = grad[i];
    const T m = beta1 * exp_avg[i] + (T(1) - beta1) * g;
    const T v = beta2 * exp_avg_sq[i] + (T(1) - beta2) * g * g;
    const T update = (m / bias_correction1) / (std::sqrt(v / bias_correction2) + eps);
    param[i] -= lr * (update + weight_decay * param[i]);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

template void adamw_step<float>(float*, float*, float*, const float*, std::int64_t, std::int64_t,
                                const AdamHyperparams&);
template void adamw_step<double>(double*, double*, double*, const double*, std::int64_t,
                                 std::int64_t, const AdamHyperparams&);

}  // namespace moebench::ops::cpu
