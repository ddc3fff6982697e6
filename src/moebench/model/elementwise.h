#pragma once
// In-place sum of float32 tensors of the same size: residual connections and
// gradients that meet from two branches.
#include "moebench/core/tensor.h"

namespace moebench::model {

inline void add_into(Tensor& target, const Tensor& addend) {
  float* t = target.data<float>();
  const float* a = addend.data<float>();
  for (int64_t i = 0; i < target.numel(); ++i) t[i] += a[i];
}

}  // namespace moebench::model
