#include "moebench/ckpt/native_model.h"

#include "moebench/config/flag_map.h"

namespace moebench::ckpt {

config::ModelConfig checkpoint_model_config(const CheckpointMetadata& metadata) {
  return config::model_config_from_flags(config::FlagMap::parse_arguments(metadata.model_args), 1);
}

model::GPTModel load_native_model(const NativeCheckpoint& checkpoint) {
  model::GPTModel model(checkpoint_model_config(checkpoint.metadata()), 0, checkpoint.metadata().conventions);
  for (model::Parameter* p : model.parameters()) checkpoint.read(whole_tensor(p->name, p->value));
  for (const model::Buffer& b : model.buffers()) checkpoint.read(whole_tensor(b.name, b.value));
  return model;
}

}  // namespace moebench::ckpt
