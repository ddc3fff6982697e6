#pragma once
// In-place sum of tensors of the same size, dtype and device: residual
// connections and gradients that meet from two branches (ops::add_).
#include "moebench/core/tensor.h"
#include "moebench/ops/elementwise.h"

namespace moebench::model {

inline void add_into(Tensor& target, const Tensor& addend) { ops::add_(target, addend); }

}  // namespace moebench::model
