#pragma once
// Every rule a setup must satisfy before anything launches. A broken rule is
// one Error naming the values and the rule.
#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"

namespace moebench::config {

void validate(const ModelConfig& model, const ParallelConfig& parallel);

// The rule of --moe-wgrad-microbatches alone: validate checks it for a MoE
// model, and so does GroupedExperts, which tests build without validate.
void validate_wgrad_microbatches(const MoeConfig& moe);

}  // namespace moebench::config
