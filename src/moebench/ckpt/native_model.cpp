#include "moebench/ckpt/native_model.h"

#include <utility>

#include "moebench/ckpt/tensor_parallel_pieces.h"
#include "moebench/ckpt/vocabulary_padding.h"
#include "moebench/config/flag_map.h"
#include "moebench/config/validation.h"
#include "moebench/model/pipeline_stage_layout.h"

namespace moebench::ckpt {
namespace {

// Every parameter and buffer the model holds, from the checkpoint: a
// tensor-parallel parameter as its slices of the one-rank tensor, the
// vocabulary-sized ones across paddings (the mapping may pad otherwise).
model::GPTModel read_held_tensors(const NativeCheckpoint& checkpoint, model::GPTModel model) {
  for (model::Parameter* p : model.parameters())
    for (const ShardedTensor& piece : tensor_parallel_pieces(p->name, p->value, p->tensor_parallel))
      read_across_vocabulary_padding(checkpoint, piece);
  for (const model::Buffer& b : model.buffers()) checkpoint.read(whole_tensor(b.name, b.value));
  return model;
}

}  // namespace

config::ModelConfig checkpoint_model_config(const CheckpointMetadata& metadata, int tensor_parallel) {
  return config::model_config_from_flags(config::FlagMap::parse_arguments(metadata.model_args), tensor_parallel);
}

config::ModelConfig model_config_for_mapping(config::ModelConfig config, const config::ParallelConfig& mapping) {
  config.sequence_parallel = mapping.sequence_parallel && mapping.tensor > 1;
  // One forward of one batch: any batch splits over the replicas.
  config::ParallelConfig forward = mapping;
  forward.micro_batch = 1;
  forward.global_batch = forward.data_parallel();
  config::validate(config, forward);
  return config;
}

model::GPTModel load_native_model(const NativeCheckpoint& checkpoint) {
  const CheckpointMetadata& metadata = checkpoint.metadata();
  return read_held_tensors(checkpoint, model::GPTModel(checkpoint_model_config(metadata), 0, metadata.conventions));
}

model::GPTModel load_native_model(const NativeCheckpoint& checkpoint, const dist::ParallelState& parallel_state,
                                  const config::ParallelConfig& mapping) {
  const CheckpointMetadata& metadata = checkpoint.metadata();
  const config::ModelConfig config =
      model_config_for_mapping(checkpoint_model_config(metadata, mapping.tensor), mapping);
  const int stage = parallel_state.membership(GroupKind::kPipeline).rank_in_group;
  const model::PipelineStageLayout layout = model::PipelineStageLayout::of_stage(mapping, config.num_layers, stage);
  model::GPTModel model(config, 0, metadata.conventions, model::ModelPlacement::cpu(), parallel_state, layout);
  return read_held_tensors(checkpoint, std::move(model));
}

}  // namespace moebench::ckpt
