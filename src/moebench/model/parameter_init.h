#pragma once
// Megatron's initialisation of parameters, keyed by (seed, parameter name) so
// a value depends only on the seed, the name and the element's index.
#include <cstdint>
#include <string>
#include <vector>

#include "moebench/model/parameter.h"

namespace moebench::model {

// normal(0, std): weights of linear layers, embeddings, the router.
Parameter normal_parameter(const std::string& name, const std::vector<int64_t>& shape, float std,
                           uint64_t seed, bool is_expert = false);
// This tp rank's slice (as `split` says) of the parameter normal_parameter
// would build with `global_shape`: the same values, element for element.
Parameter normal_parameter(const std::string& name, const std::vector<int64_t>& global_shape, float std,
                           uint64_t seed, const TensorParallelSplit& split);
// Every element `value`, no weight decay: norm weights (1) and biases (0).
Parameter constant_parameter(const std::string& name, const std::vector<int64_t>& shape,
                             float value);

}  // namespace moebench::model
