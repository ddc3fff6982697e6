#include "moebench/ckpt/native_to_hf.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "moebench/ckpt/hf_config_export.h"
#include "moebench/ckpt/hf_import.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/native_model.h"
#include "moebench/ckpt/safetensors_tensor.h"
#include "moebench/ckpt/safetensors_writer.h"
#include "moebench/config/flag_map.h"
#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

namespace fs = std::filesystem;

// Rows [begin, begin + rows) of hub tensor come from rows [our_row, ...) of `ours`.
struct RowSource {
  std::string ours;
  int64_t our_row = 0;
  int64_t begin = 0;
  int64_t rows = 0;
};

struct HubTensor {
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::vector<RowSource> sources;
};

// Inverts hf_tensor_mappings: each hub tensor with the rows of ours it holds.
std::map<std::string, HubTensor> plan(const NativeCheckpoint& checkpoint, const config::ModelConfig& config) {
  std::vector<HfTensorMapping> mappings = hf_tensor_mappings(config);
  for (HfTensorMapping& buffer : hf_buffer_mappings(config)) mappings.push_back(std::move(buffer));
  std::map<std::string, HubTensor> hub;
  for (const HfTensorMapping& mapping : mappings) {
    if (!checkpoint.contains(mapping.name))
      throw Error("checkpoint " + checkpoint.directory().string() + " lacks '" + mapping.name +
                  "', which its model needs; the checkpoint is incomplete");
    const CheckpointTensor& stored = checkpoint.metadata().tensors.at(mapping.name);
    // Whole pieces of one parameter are equal in size ([gate; up]).
    const int64_t whole_rows = stored.shape[0] / int64_t(mapping.pieces.size());
    int64_t our_row = 0;
    for (const HfRowRange& piece : mapping.pieces) {
      const int64_t rows = piece.rows == 0 ? whole_rows : piece.rows;
      HubTensor& tensor = hub[piece.hub_name];
      if (tensor.shape.empty()) {
        tensor.shape = stored.shape;
        tensor.shape[0] = 0;
        tensor.dtype = dtype_from_safetensors(stored.dtype);
      }
      tensor.shape[0] = std::max(tensor.shape[0], piece.begin + rows);
      tensor.sources.push_back({mapping.name, our_row, piece.begin, rows});
      our_row += rows;
    }
  }
  return hub;
}

std::string shard_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

// The hub tensors, written in shards of at most max_shard_bytes (in name
// order, transformers' layout) with model.safetensors.index.json when there
// are several, and config.json, into `staging`.
void write_hub_directory(const NativeCheckpoint& checkpoint, const std::map<std::string, HubTensor>& hub,
                         const std::string& config_json, int64_t max_shard_bytes, const fs::path& staging) {
  const CheckpointMetadata& metadata = checkpoint.metadata();
  std::vector<std::vector<const std::pair<const std::string, HubTensor>*>> shards(1);
  int64_t shard_bytes = 0;
  for (const auto& entry : hub) {
    const int64_t bytes = TensorSlice::whole(entry.second.shape).numel() * int64_t(size_in_bytes(entry.second.dtype));
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&entry);
    shard_bytes += bytes;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total_bytes = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1 ? "model.safetensors" : shard_name(s, shards.size());
    std::vector<SafetensorsEntry> entries;
    for (const auto* entry : shards[s])
      entries.push_back({entry->first, safetensors_dtype(entry->second.dtype), entry->second.shape});
    SafetensorsWriter writer(staging / file, std::move(entries), {{"format", "pt"}});
    for (const auto* entry : shards[s]) {
      const HubTensor& tensor = entry->second;
      Tensor values = Tensor::empty(tensor.shape, tensor.dtype);
      for (const RowSource& source : tensor.sources) {
        const CheckpointTensor& stored = metadata.tensors.at(source.ours);
        TensorSlice rows = TensorSlice::whole(stored.shape);
        rows.offsets[0] = source.our_row;
        rows.sizes[0] = source.rows;
        checkpoint.read({source.ours, stored.shape, rows, values.slice(0, source.begin, source.begin + source.rows)});
      }
      writer.write(entry->first, {static_cast<const std::byte*>(values.data_ptr()), values.nbytes()});
      weight_map[entry->first] = file;
      total_bytes += int64_t(values.nbytes());
    }
    writer.commit();
  }
  if (shards.size() > 1)
    write_file_atomically(staging / "model.safetensors.index.json",
                          nlohmann::json{{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}}.dump(2) +
                              "\n");
  write_file_atomically(staging / "config.json", config_json);
}

// The hub config: the one the checkpoint was converted from, else one
// derived from its model (a checkpoint saved by training), with the dtype of
// its weights.
std::string hub_config_of(const NativeCheckpoint& checkpoint, const config::ModelConfig& config,
                          const std::map<std::string, HubTensor>& hub) {
  const CheckpointMetadata& metadata = checkpoint.metadata();
  if (!metadata.hf_config.empty()) return metadata.hf_config + "\n";
  try {
    const config::FlagMap flags = config::FlagMap::parse_arguments(metadata.model_args);
    return hf_config_json(config, metadata.conventions, hub.at("lm_head.weight").dtype,
                          int(flags.get_int("--max-position-embeddings", config.seq_length)));
  } catch (const Error& e) {
    throw Error("checkpoint " + checkpoint.directory().string() + ": " + e.what());
  }
}

}  // namespace

void convert_native_to_hf(const NativeToHfOptions& options) {
  const fs::path& out = options.hub_directory;
  if (fs::exists(out) && !fs::is_empty(out))
    throw Error("--save " + out.string() + " exists and is not empty; give a new directory for the Hugging Face checkpoint");
  const NativeCheckpoint checkpoint(options.checkpoint);
  const config::ModelConfig config = checkpoint_model_config(checkpoint.metadata());
  const std::map<std::string, HubTensor> hub = plan(checkpoint, config);
  const std::string config_json = hub_config_of(checkpoint, config, hub);

  // Written aside and renamed into place: `out` appears only when complete.
  const fs::path staging = out.parent_path() / ("." + out.filename().string() + ".staging");
  fs::remove_all(staging);
  fs::create_directories(staging);
  try {
    write_hub_directory(checkpoint, hub, config_json, options.max_shard_bytes, staging);
  } catch (...) {
    fs::remove_all(staging);
    throw;
  }
  if (fs::exists(out)) fs::remove(out);  // empty, checked above
  fs::rename(staging, out);
}

}  // namespace moebench::ckpt
