#pragma once
// The inverse of model_config_from_flags: the Megatron flags that rebuild a
// ModelConfig exactly (with tensor parallel size 1), for models that came
// from elsewhere (a Hugging Face config) and must be recorded in a checkpoint.
#include "moebench/config/flag_map.h"
#include "moebench/config/model_config.h"

namespace moebench::config {

// model_config_from_flags(model_config_flags(m), 1) == m, field by field.
FlagMap model_config_flags(const ModelConfig& config);

}  // namespace moebench::config
