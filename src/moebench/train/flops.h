#pragma once
// Model FLOPs per iteration as Megatron-LM counts them for its TFLOP/s figure
// (the formula in docs/flops.md): forward + backward = 3 x forward, 2 FLOPs
// per multiply-add, causal attention counted as half.
#include "moebench/config/model_config.h"

namespace moebench::train {

// FLOPs of one iteration over `global_batch` sequences of the model's seq-length.
double flops_per_iteration(const config::ModelConfig& model, long long global_batch);

// The attention term A of the formula: per layer, per token, before the 6 x B x s factor.
double attention_flops_term(const config::ModelConfig& model);

}  // namespace moebench::train
