#pragma once
// The parallel mapping and batch sizes of a run: Megatron's TP, PP, EP, CP,
// VPP, uneven first/last pipeline stages, MBS and GBS.
#include <vector>

#include "moebench/config/flag_map.h"

namespace moebench::config {

struct ParallelConfig {
  int world_size = 1;
  int tensor = 1;           // TP
  int pipeline = 1;         // PP
  int expert = 1;           // EP
  int expert_tensor = 1;    // expert-TP
  int context = 1;          // CP
  int virtual_stages = 1;   // VPP: model chunks per pipeline rank
  int first_stage_layers = 0;  // 0: split evenly
  int last_stage_layers = 0;
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  int micro_batch = 1;      // MBS
  int global_batch = 1;     // GBS

  int model_parallel() const { return tensor * pipeline * context; }
  int data_parallel() const { return world_size / model_parallel(); }
  int expert_data_parallel() const { return world_size / (expert_tensor * expert * pipeline); }
  int num_microbatches() const { return global_batch / (micro_batch * data_parallel()); }
  // Layers held by each pipeline stage, first to last (call after validation).
  std::vector<int> layers_per_stage(int num_layers) const;
};

ParallelConfig parallel_config_from_flags(const FlagMap& flags, int world_size);

}  // namespace moebench::config
