#include "moebench/ops/adam.h"

#include <cmath>
#include <string>
#include <type_traits>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {
namespace {

// `value` as a moment is stored: unchanged in T, or rounded to the nearest
// bf16 (ties to even) directly from T, with no intermediate rounding to float.
template <typename Stored, typename T>
Stored stored(T value) {
  if constexpr (std::is_same_v<Stored, bfloat16>) {
    uint16_t bits = 0;
    store_element_from_double(DType::BF16, double(value), &bits);
    return bfloat16::from_bits(bits);
  } else {
    return value;
  }
}

}  // namespace

template <typename T, typename ExpAvg, typename ExpAvgSq>
void adamw_step(T* param, ExpAvg* exp_avg, ExpAvgSq* exp_avg_sq, const T* grad, std::int64_t n,
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
    const T g = T(double(grad[i]) * hyperparams.grad_scale);
    const T m = beta1 * T(exp_avg[i]) + (T(1) - beta1) * g;
    const T v = beta2 * T(exp_avg_sq[i]) + (T(1) - beta2) * g * g;
    const T update = (m / bias_correction1) / (std::sqrt(v / bias_correction2) + eps);
    param[i] -= lr * (update + weight_decay * param[i]);
    exp_avg[i] = stored<ExpAvg>(m);
    exp_avg_sq[i] = stored<ExpAvgSq>(v);
  }
}

// T in {float, double}; m and v each stored in T or bf16.
// clang-format off
template void adamw_step(float*, float*, float*, const float*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(float*, bfloat16*, float*, const float*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(float*, float*, bfloat16*, const float*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(float*, bfloat16*, bfloat16*, const float*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(double*, double*, double*, const double*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(double*, bfloat16*, double*, const double*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(double*, double*, bfloat16*, const double*, int64_t, int64_t, const AdamHyperparams&);
template void adamw_step(double*, bfloat16*, bfloat16*, const double*, int64_t, int64_t, const AdamHyperparams&);
// clang-format on

}  // namespace moebench::ops::cpu
