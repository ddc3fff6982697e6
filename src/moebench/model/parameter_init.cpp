#include "moebench/model/parameter_init.h"

#include "moebench/core/rng.h"

namespace moebench::model {

Parameter normal_parameter(const std::string& name, const std::vector<int64_t>& shape, float std,
                           uint64_t seed, bool is_expert) {
  Parameter parameter{name, Tensor::empty(shape, DType::F32), Tensor::zeros(shape, DType::F32)};
  fill_normal(parameter.value, CounterRng(seed, name), 0.0f, std);
  parameter.is_expert = is_expert;
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
