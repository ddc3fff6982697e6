#pragma once
// One Adam step with decoupled weight decay (AdamW), as Megatron's "adam"
// optimizer runs it through Apex/Transformer Engine FusedAdam:
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   p -= lr * (m / (1 - beta1^step) / (sqrt(v / (1 - beta2^step)) + eps) + weight_decay * p)
// The decay uses p from before the step. Main params and both moments are
// fp32 in training; the reference runs in T (float or double).
#include <cstdint>

namespace moebench::ops {

// Megatron's flag defaults; weight_decay is per parameter group (the caller
// passes 0 for norms and biases when it excludes them from decay).
struct AdamHyperparams {
  double lr = 0.0;            // --lr, after the schedule
  double beta1 = 0.9;         // --adam-beta1
  double beta2 = 0.999;       // --adam-beta2
  double eps = 1e-8;          // --adam-eps, added to sqrt(v_hat)
  double weight_decay = 0.0;  // --weight-decay for this group
};

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// Updates param[N], exp_avg[N] (m) and exp_avg_sq[N] (v) in place from
// grad[N]; `step` counts from 1 (the first update). Instantiated for float and double.
template <typename T>
void adamw_step(T* param, T* exp_avg, T* exp_avg_sq, const T* grad, std::int64_t n,
                std::int64_t step, const AdamHyperparams& hyperparams);

}  // namespace moebench::ops::cpu
