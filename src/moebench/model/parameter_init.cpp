#include "moebench/model/parameter_init.h"

#include <string>

#include "moebench/core/error.h"
#include "moebench/core/rng.h"

namespace moebench::model {

Parameter normal_parameter(const std::string& name, const std::vector<int64_t>& shape, float std,
                           uint64_t seed, bool is_expert) {
  Parameter parameter{name, Tensor::empty(shape, DType::F32), Tensor::zeros(shape, DType::F32)};
  fill_normal(parameter.value, CounterRng(seed, name), 0.0f, std);
  parameter.is_expert = is_expert;
  return parameter;
}

Parameter normal_parameter(const std::string& name, const std::vector<int64_t>& global_shape, float std,
                           uint64_t seed, const TensorParallelSplit& split) {
  if (!split.is_split()) {
    Parameter parameter = normal_parameter(name, global_shape, std, seed);
    parameter.tensor_parallel = split;
    return parameter;
  }
  const auto dim = size_t(split.partition_dim);
  if (global_shape[dim] % (int64_t(split.size) * split.partition_stride) != 0)
    throw Error("parameter '" + name + "': dimension " + std::to_string(dim) + " of " + format_dims(global_shape) +
                " does not split into " + std::to_string(split.partition_stride) + " block(s) over TP=" +
                std::to_string(split.size) + "; choose a TP that divides it");
  std::vector<int64_t> shape = global_shape;
  shape[dim] /= split.size;
  Parameter parameter{name, Tensor::empty(shape, DType::F32), Tensor::zeros(shape, DType::F32)};
  parameter.tensor_parallel = split;
  const CounterRng rng(seed, name);
  for (const SplitRange& range : split.ranges(shape)) {
    Tensor piece = parameter.value.slice(int64_t(dim), range.local_offset, range.local_offset + range.size);
    ShardPlacement placement{global_shape, std::vector<int64_t>(global_shape.size(), 0)};
    placement.origin[dim] = range.global_offset;
    fill_normal(piece, rng, 0.0f, std, placement);
  }
  return parameter;
}

Parameter constant_parameter(const std::string& name, const std::vector<int64_t>& shape,
                             float value) {
  Parameter parameter{name, Tensor::empty(shape, DType::F32), Tensor::zeros(shape, DType::F32)};
  parameter.value.fill_(value);
  parameter.weight_decay = false;
  return parameter;
}

}  // namespace moebench::model
