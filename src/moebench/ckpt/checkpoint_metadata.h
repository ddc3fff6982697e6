#pragma once
// metadata.json of a native checkpoint: every tensor's global shape and dtype
// and, per rank file, the slice of it that the file holds; the model (its
// resolved Megatron flags); and where training stood. Written last, so its
// presence means the checkpoint is complete.
//
//   {"format": "moebench-native", "version": 1, "iteration": 10 | null,
//    "progress": {"iteration", "consumed_samples", "consumed_validation_samples", "scheduler_samples"},
//    "optimizer": {"steps": 10} | absent,   "rng": {"seed": 1234} | absent,
//    "model_args": ["--num-layers", "2", ...], "model_conventions": {"group_score": "max"},
//    "hf_config": {the hub config.json it was converted from} | absent,
//    "rank_files": ["rank_00000.safetensors", ...],
//    "tensors": {name: {"dtype": "F32", "shape": [..],
//                       "shards": [{"file": .., "key": .., "offsets": [..], "sizes": [..]}]}}}
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "moebench/ckpt/tensor_slice.h"
#include "moebench/model/model_conventions.h"

namespace moebench::ckpt {

struct ShardLocation {
  std::string file;  // a rank file of the checkpoint
  std::string key;   // the entry's name in that file
  TensorSlice slice;
};

struct CheckpointTensor {
  std::string dtype;  // safetensors spelling, the same in every shard
  std::vector<int64_t> shape;
  std::vector<ShardLocation> shards;  // disjoint, covering the whole tensor
};

// Where training stood after the checkpoint's iteration.
struct TrainingProgress {
  int64_t iteration = 0;
  int64_t consumed_samples = 0;
  int64_t consumed_validation_samples = 0;
  int64_t scheduler_samples = 0;  // the learning-rate schedule's position (applied updates x GBS)
};

struct CheckpointMetadata {
  std::optional<int64_t> iteration;  // none: a release checkpoint (converted, no training state)
  TrainingProgress progress;
  std::optional<int64_t> optimizer_steps;  // set when the optimizer state was saved
  std::optional<int64_t> rng_seed;         // set when the RNG state was saved
  std::vector<std::string> model_args;     // the Megatron flags that build the model
  model::ModelConventions conventions;     // where the model computes as Hugging Face does
  std::string hf_config;                   // the hub config.json it was converted from; empty otherwise
  std::vector<std::string> rank_files;
  std::map<std::string, CheckpointTensor> tensors;
};

std::string metadata_to_json(const CheckpointMetadata& metadata);
// Throws an Error naming `source` for bad JSON, a missing or mistyped field,
// a shard outside its tensor and shards that do not tile their tensor.
CheckpointMetadata metadata_from_json(const std::string& text, const std::filesystem::path& source);

// Throws an Error unless the shards of `tensor` lie inside it, match its
// rank and cover each element exactly once.
void check_shards_tile(const std::string& name, const CheckpointTensor& tensor, const std::filesystem::path& source);

}  // namespace moebench::ckpt
