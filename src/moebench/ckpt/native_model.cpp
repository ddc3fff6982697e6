#include "moebench/ckpt/native_model.h"

#include "moebench/config/flag_map.h"

namespace moebench::ckpt {
namespace {

// Every parameter and buffer the model holds, from the checkpoint.
model::GPTModel read_held_tensors(const NativeCheckpoint& checkpoint, model::GPTModel model) {
  for (model::Parameter* p : model.parameters()) checkpoint.read(whole_tensor(p->name, p->value));
  for (const model::Buffer& b : model.buffers()) checkpoint.read(whole_tensor(b.name, b.value));
  return model;
}

}  // namespace

config::ModelConfig checkpoint_model_config(const CheckpointMetadata& metadata) {
  return config::model_config_from_flags(config::FlagMap::parse_arguments(metadata.model_args), 1);
}

model::GPTModel load_native_model(const NativeCheckpoint& checkpoint) {
  const CheckpointMetadata& metadata = checkpoint.metadata();
  return read_held_tensors(checkpoint, model::GPTModel(checkpoint_model_config(metadata), 0, metadata.conventions));
}

model::GPTModel load_native_model(const NativeCheckpoint& checkpoint, const dist::ParallelState& parallel_state,
                                  const model::PipelineStageLayout& layout) {
  const CheckpointMetadata& metadata = checkpoint.metadata();
  return read_held_tensors(checkpoint, model::GPTModel(checkpoint_model_config(metadata), 0, metadata.conventions,
                                                       model::ModelPlacement::cpu(), parallel_state, layout));
}

}  // namespace moebench::ckpt
