#pragma once
// How many parameters a model has, split the way parallelism splits them:
// dense (attention, dense MLP, shared experts, router, norms), routed experts,
// embedding and output layer.
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"

namespace moebench::train {

struct ParameterCount {
  double dense = 0;    // replicated over DP, split by TP
  double experts = 0;  // routed experts, split by EP x expert-TP
  double embedding = 0;
  double output = 0;
  double total() const { return dense + experts + embedding + output; }
};

// Parameters of layer `layer` (0-based): attention + its MLP, norms included.
ParameterCount layer_parameters(const config::ModelConfig& model, int layer);
// The whole model, and what is active for one token (top-k of the routed experts).
ParameterCount model_parameters(const config::ModelConfig& model);
ParameterCount active_parameters(const config::ModelConfig& model);

// What one rank of each pipeline stage holds, after TP and EP splits.
std::vector<ParameterCount> parameters_per_stage(const config::ModelConfig& model,
                                                 const config::ParallelConfig& parallel);

}  // namespace moebench::train
