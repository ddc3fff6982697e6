#include "moebench/train/parameter_check.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::train {

void require_cpu_float32(const model::Parameter& p, std::string_view user) {
  const bool usable = p.value.defined() && p.grad.defined() && p.value.dtype() == DType::F32 &&
                      p.grad.dtype() == DType::F32 && p.value.is_contiguous() && p.grad.is_contiguous() &&
                      p.value.device().is_cpu() && p.grad.device().is_cpu() && p.value.shape() == p.grad.shape();
  if (!usable)
    throw Error(std::string(user) + ": parameter '" + p.name +
                "' needs contiguous float32 CPU value and grad of one shape, got " +
                (p.value.defined() ? p.value.describe() : "undefined") + " and " +
                (p.grad.defined() ? p.grad.describe() : "undefined"));
}

}  // namespace moebench::train
