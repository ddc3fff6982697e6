#pragma once
// The resolved configuration of a run as YAML, written into its output
// directory so a result can always be traced to exactly what ran: the model,
// the guide's variables, the environment given to the training process and
// every Megatron flag (bare flags as true, multi-value flags as lists).
#include <string>

#include "moebench/config/resolve.h"

namespace moebench::config {

std::string resolved_config_yaml(const ResolvedConfig& config, int world_size);

}  // namespace moebench::config
