#pragma once
// A GPTModel rebuilt from a native checkpoint: the architecture from its
// recorded Megatron flags and conventions, the weights and buffers from its
// shards (for `moebench logits` and converters, one process, no parallelism).
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/config/model_config.h"
#include "moebench/model/gpt_model.h"

namespace moebench::ckpt {

config::ModelConfig checkpoint_model_config(const CheckpointMetadata& metadata);
model::GPTModel load_native_model(const NativeCheckpoint& checkpoint);

}  // namespace moebench::ckpt
