#pragma once
// `moebench convert native-to-hf`: a native checkpoint (any sharding) into a
// Hugging Face hub directory: config.json plus model.safetensors, or
// model-0000k-of-0000n.safetensors shards with model.safetensors.index.json
// when the weights exceed one shard. Streaming: each hub tensor is gathered
// from the shards of the parameters it feeds (in their stored dtype) and
// written, one at a time. config.json is the hub config the checkpoint was
// converted from or, for a checkpoint saved by `moebench run`, one derived
// from its model (hf_config_export.h). The directory appears only when
// complete: it is written aside (.<name>.staging, removed on failure) and
// renamed into place.
#include <cstdint>
#include <filesystem>

namespace moebench::ckpt {

struct NativeToHfOptions {
  std::filesystem::path checkpoint;     // a native checkpoint root or directory
  std::filesystem::path hub_directory;  // must not exist yet, or be empty
  int64_t max_shard_bytes = int64_t(5) << 30;  // transformers' default shard size
};

void convert_native_to_hf(const NativeToHfOptions& options);

}  // namespace moebench::ckpt
