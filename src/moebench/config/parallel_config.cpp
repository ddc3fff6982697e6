#include "moebench/config/parallel_config.h"

namespace moebench::config {

std::vector<int> ParallelConfig::layers_per_stage(int num_layers) const {
  std::vector<int> layers(pipeline, 0);
  int first = 0, last = pipeline;
  int remaining = num_layers;
  if (first_stage_layers > 0) layers[first++] = first_stage_layers, remaining -= first_stage_layers;
  if (last_stage_layers > 0 && last > first) layers[--last] = last_stage_layers, remaining -= last_stage_layers;
  for (int stage = first; stage < last; ++stage) layers[stage] = remaining / (last - first);
  return layers;
}

ParallelConfig parallel_config_from_flags(const FlagMap& flags, int world_size) {
  ParallelConfig p;
  p.world_size = world_size;
  p.tensor = static_cast<int>(flags.get_int("--tensor-model-parallel-size", 1));
  p.pipeline = static_cast<int>(flags.get_int("--pipeline-model-parallel-size", 1));
  p.expert = static_cast<int>(flags.get_int("--expert-model-parallel-size", 1));
  p.expert_tensor = static_cast<int>(flags.get_int("--expert-tensor-parallel-size", p.tensor));
  p.context = static_cast<int>(flags.get_int("--context-parallel-size", 1));
  p.virtual_stages = static_cast<int>(flags.get_int("--num-virtual-stages-per-pipeline-rank", 1));
  p.first_stage_layers = static_cast<int>(flags.get_int("--decoder-first-pipeline-num-layers", 0));
  p.last_stage_layers = static_cast<int>(flags.get_int("--decoder-last-pipeline-num-layers", 0));
  // Megatron turns sequence parallelism off when there is no tensor parallelism.
  p.sequence_parallel = flags.get_bool("--sequence-parallel") && p.tensor > 1;
  p.distributed_optimizer = flags.get_bool("--use-distributed-optimizer");
  p.micro_batch = static_cast<int>(flags.get_int("--micro-batch-size", 1));
  p.global_batch = static_cast<int>(flags.get_int("--global-batch-size", p.micro_batch));
  return p;
}

}  // namespace moebench::config
