#pragma once
// What the CPU training path needs of every parameter it updates or reduces.
#include <string_view>

#include "moebench/model/parameter.h"

namespace moebench::train {

// Throws Error, naming `user` and the parameter, unless value and grad are
// contiguous float32 CPU tensors of one shape.
void require_cpu_float32(const model::Parameter& parameter, std::string_view user);

}  // namespace moebench::train
