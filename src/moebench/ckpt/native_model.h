#pragma once
// A GPTModel rebuilt from a native checkpoint: the architecture from its
// recorded Megatron flags and conventions, the weights and buffers from its
// shards (for `moebench logits` and converters). The checkpoint may have been
// saved under any mapping: each parameter is read from the stored shards that
// overlap it (a tensor-parallel rank its slices of the one-rank tensors).
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"

namespace moebench::ckpt {

// The recorded architecture, its vocabulary padded for `tensor_parallel` ranks.
config::ModelConfig checkpoint_model_config(const CheckpointMetadata& metadata, int tensor_parallel = 1);

// `config` to run one forward under `mapping` (TP, PP with its uneven first
// and last stages, EP; the world's other ranks replicas): sequence-parallel
// as the mapping says (with TP > 1), checked as `moebench run` checks a
// mapping (MoE with TP needs sequence parallelism, every split divides),
// throwing its Error.
config::ModelConfig model_config_for_mapping(config::ModelConfig config, const config::ParallelConfig& mapping);

// The whole model, on one process.
model::GPTModel load_native_model(const NativeCheckpoint& checkpoint);

// This rank's part of the model under `mapping` (model_config_for_mapping),
// `parallel_state` being built for it: the layers of its pipeline stage, its
// tp slices and its ep rank's experts, reading only the pieces it holds.
// `parallel_state` is kept by the model (tp and ep communicate).
model::GPTModel load_native_model(const NativeCheckpoint& checkpoint, const dist::ParallelState& parallel_state,
                                  const config::ParallelConfig& mapping);

}  // namespace moebench::ckpt
