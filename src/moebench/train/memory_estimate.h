#pragma once
// Peak memory per GPU before a run: weights, gradients, optimizer states and
// the activations the pipeline keeps in flight. docs/memory-model.md derives
// every term.
#include <string>

#include "moebench/config/flag_map.h"
#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/train/optimizer_precision.h"

namespace moebench::train {

struct RecomputeConfig {
  bool full = false;         // --recompute-granularity full
  int layers = 0;            // --recompute-num-layers (uniform: layers per recomputed block)
};

RecomputeConfig recompute_config_from_flags(const config::FlagMap& flags);

struct MemoryEstimate {
  int stage = 0;                     // the pipeline stage that needs the most
  double weights = 0;                // bf16 model weights
  double gradients = 0;              // fp32 gradient accumulation buffers
  double optimizer = 0;              // fp32 main weights + Adam m and v (in precision's dtypes), as configured
  double optimizer_replicated = 0;   // the same without the distributed optimizer
  double optimizer_distributed = 0;  // the same with it
  double activations_per_microbatch = 0;
  double microbatches_in_flight = 0;
  double activations = 0;
  int kept_wgrad_microbatches = 0;  // --moe-wgrad-microbatches N: min(N, microbatches) - 1
  double kept_wgrad_operands = 0;   // the routed experts' weight-gradient operands those keep (bf16)
  double workspace = 0;              // library workspaces and allocator slack
  double total() const { return weights + gradients + optimizer + activations + kept_wgrad_operands + workspace; }
};

// Bytes per GPU on the stage with the largest total; `precision`: the
// optimizer state's dtypes (--use-precision-aware-optimizer).
MemoryEstimate estimate_memory(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                               const RecomputeConfig& recompute, const OptimizerPrecision& precision = {});

// Bytes of activations one transformer layer keeps for its backward, per token.
double layer_activation_bytes_per_token(const config::ModelConfig& model, int layer);

}  // namespace moebench::train
