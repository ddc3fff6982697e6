#pragma once
// A GPTModel rebuilt from a native checkpoint: the architecture from its
// recorded Megatron flags and conventions, the weights and buffers from its
// shards (for `moebench logits` and converters). The checkpoint may have been
// saved under any mapping: each parameter is read from the stored shards that
// overlap it.
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/config/model_config.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"
#include "moebench/model/pipeline_stage_layout.h"

namespace moebench::ckpt {

config::ModelConfig checkpoint_model_config(const CheckpointMetadata& metadata);

// The whole model, on one process.
model::GPTModel load_native_model(const NativeCheckpoint& checkpoint);

// This rank's part of the model under `parallel_state`'s mapping: the layers
// of its pipeline stage (`layout`, for the pp group's size and this rank's
// stage) and its ep rank's experts, reading only the pieces it holds.
// `parallel_state` is kept by the model (expert parallelism communicates).
model::GPTModel load_native_model(const NativeCheckpoint& checkpoint, const dist::ParallelState& parallel_state,
                                  const model::PipelineStageLayout& layout);

}  // namespace moebench::ckpt
