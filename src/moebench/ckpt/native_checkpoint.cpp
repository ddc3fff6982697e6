#include "moebench/ckpt/native_checkpoint.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/safetensors_tensor.h"
#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

// The rank file's header entry that says which global slice each key holds.
constexpr const char* kShardsKey = "moebench.shards";

std::string read_text(const fs::path& path) {
  std::ifstream file(path);
  if (!file) throw Error("cannot read " + path.string() + "; check it exists and is readable");
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The key of the n-th piece of `name` in one rank file: a rank can hold
// several (the gate and up halves of a TP shard of a SwiGLU weight).
std::string piece_key(const std::string& name, int piece) {
  return piece == 0 ? name : name + "#" + std::to_string(piece);
}

// Moves `staging` to `final_path`; an older directory there is swapped out
// in one step (renameat2 RENAME_EXCHANGE) and then deleted.
void move_into_place(const fs::path& staging, const fs::path& final_path) {
  if (!fs::exists(final_path)) {
    fs::rename(staging, final_path);
    return;
  }
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, final_path.c_str(), RENAME_EXCHANGE) != 0)
    throw Error("cannot replace checkpoint " + final_path.string() + " with " + staging.string() + ": " +
                std::strerror(errno) + "; check the filesystem supports atomic directory exchange");
  fs::remove_all(staging);  // now the older checkpoint
}

}  // namespace

ShardedTensor whole_tensor(const std::string& name, const Tensor& tensor) {
  return {name, tensor.shape(), TensorSlice::whole(tensor.shape()), tensor};
}

std::vector<ShardedTensor> flat_run_pieces(const std::string& name, const std::vector<int64_t>& global_shape,
                                           int64_t begin, const Tensor& run) {
  std::vector<ShardedTensor> pieces;
  // The rectangles come in flat order and each is one contiguous run.
  int64_t start = 0;
  for (const TensorSlice& slice : flat_range_slices(global_shape, begin, begin + run.numel())) {
    pieces.push_back({name, global_shape, slice, run.slice(0, start, start + slice.numel()).view(slice.sizes)});
    start += slice.numel();
  }
  return pieces;
}

RankFileWriter::RankFileWriter(const fs::path& staging, int rank, std::vector<PieceLayout> pieces)
    : pieces_(std::move(pieces)) {
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, int> count;
  json described = json::object();
  for (const PieceLayout& piece : pieces_) {
    if (!piece.slice.fits(piece.global_shape))
      throw Error("checkpoint piece '" + piece.name + "' " + piece.slice.describe() + " does not fit its global shape " +
                  format_dims(piece.global_shape));
    keys_.push_back(piece_key(piece.name, count[piece.name]++));
    entries.push_back({keys_.back(), safetensors_dtype(piece.dtype), piece.slice.sizes});
    described[keys_.back()] = {{"name", piece.name}, {"global_shape", piece.global_shape}, {"offsets", piece.slice.offsets}};
  }
  fs::create_directories(staging);
  file_ = std::make_unique<SafetensorsWriter>(staging / rank_file_name(rank), std::move(entries),
                                              std::map<std::string, std::string>{{kShardsKey, described.dump()}});
}

RankFileWriter::~RankFileWriter() = default;

void RankFileWriter::write(size_t index, const Tensor& values) {
  const PieceLayout& piece = pieces_.at(index);
  if (values.shape() != piece.slice.sizes || values.dtype() != piece.dtype)
    throw Error("checkpoint piece '" + piece.name + "' " + piece.slice.describe() + " needs " + std::string(name(piece.dtype)) +
                format_dims(piece.slice.sizes) + ", got " + values.describe());
  const Tensor contiguous = values.contiguous();
  file_->write(keys_[index], {static_cast<const std::byte*>(contiguous.data_ptr()), contiguous.nbytes()});
}

void RankFileWriter::commit() { file_->commit(); }

void write_rank_file(const fs::path& staging, int rank, std::span<const ShardedTensor> shards) {
  std::vector<PieceLayout> layouts;
  for (const ShardedTensor& shard : shards) {
    if (shard.local.shape() != shard.slice.sizes)
      throw Error("checkpoint piece '" + shard.name + "' " + shard.slice.describe() + " has local " + shard.local.describe());
    layouts.push_back({shard.name, shard.global_shape, shard.slice, shard.local.dtype()});
  }
  RankFileWriter writer(staging, rank, std::move(layouts));
  for (size_t i = 0; i < shards.size(); ++i) writer.write(i, shards[i].local);
  writer.commit();
}

bool is_complete_rank_file(const fs::path& file) {
  if (!fs::is_regular_file(file)) return false;
  try {
    return SafetensorsFile(file).metadata().contains(kShardsKey);
  } catch (const Error&) {
    return false;  // cut off or damaged: write it again
  }
}

void commit_checkpoint(const fs::path& root, CheckpointMetadata metadata, int rank_count) {
  const std::string name = checkpoint_name(metadata.iteration);
  const fs::path staging = staging_directory(root, name);
  metadata.tensors.clear();
  metadata.rank_files.clear();
  for (int rank = 0; rank < rank_count; ++rank) {
    const std::string file_name = rank_file_name(rank);
    const fs::path file_path = staging / file_name;
    if (!fs::exists(file_path))
      throw Error("checkpoint " + (root / name).string() + ": rank " + std::to_string(rank) + " wrote no " +
                  file_name + "; every rank must save before the checkpoint is committed");
    const SafetensorsFile file(file_path);
    const auto shards = file.metadata().find(kShardsKey);
    if (shards == file.metadata().end())
      throw Error(file_path.string() + " is not a moebench rank file (no " + kShardsKey + " in its header)");
    const json pieces = json::parse(shards->second);
    for (const auto& [key, described] : pieces.items()) {
      const SafetensorsTensor& entry = file.tensor(key);
      const std::string tensor_name = described.at("name").get<std::string>();
      const auto global_shape = described.at("global_shape").get<std::vector<int64_t>>();
      auto [it, fresh] = metadata.tensors.try_emplace(tensor_name, CheckpointTensor{entry.dtype, global_shape, {}});
      if (it->second.dtype != entry.dtype || it->second.shape != global_shape)
        throw Error("checkpoint " + (root / name).string() + ": '" + tensor_name + "' is " + entry.dtype + " " +
                    format_dims(global_shape) + " in " + file_name + " but " + it->second.dtype + " " +
                    format_dims(it->second.shape) + " elsewhere; save all pieces of a tensor alike");
      it->second.shards.push_back(
          {file_name, key, {described.at("offsets").get<std::vector<int64_t>>(), entry.shape}});
    }
    metadata.rank_files.push_back(file_name);
  }
  for (const auto& [tensor_name, tensor] : metadata.tensors) check_shards_tile(tensor_name, tensor, root / name);
  write_file_atomically(staging / kMetadataFileName, metadata_to_json(metadata));
  move_into_place(staging, root / name);
  write_tracker(root, metadata.iteration);
}

NativeCheckpoint::NativeCheckpoint(const fs::path& path) : directory_(resolve_checkpoint_directory(path)) {
  const fs::path metadata_path = directory_ / kMetadataFileName;
  metadata_ = metadata_from_json(read_text(metadata_path), metadata_path);
  for (const std::string& file : metadata_.rank_files) {
    if (!fs::exists(directory_ / file))
      throw Error("checkpoint " + directory_.string() + " is missing its rank file " + file +
                  "; the checkpoint is incomplete: copy the whole directory or save it again");
    files_.emplace(file, SafetensorsFile(directory_ / file));
  }
  for (const auto& [name, tensor] : metadata_.tensors)
    for (const ShardLocation& shard : tensor.shards) {
      const auto file = files_.find(shard.file);
      if (file == files_.end() || !file->second.contains(shard.key) ||
          file->second.tensor(shard.key).dtype != tensor.dtype || file->second.tensor(shard.key).shape != shard.slice.sizes)
        throw Error("checkpoint " + directory_.string() + ": '" + name + "' " + shard.slice.describe() +
                    " is not stored in " + shard.file + " as metadata.json says (" + tensor.dtype + " " +
                    format_dims(shard.slice.sizes) + " under '" + shard.key +
                    "'); the checkpoint is inconsistent: save or convert it again");
    }
}

const CheckpointTensor& NativeCheckpoint::stored(const std::string& name) const {
  const auto found = metadata_.tensors.find(name);
  if (found == metadata_.tensors.end())
    throw Error("checkpoint " + directory_.string() + " has no tensor '" + name +
                "'; it was saved from a different model (compare its metadata.json model_args with this run's flags)");
  return found->second;
}

void NativeCheckpoint::read(const ShardedTensor& target) const {
  const CheckpointTensor& tensor = stored(target.name);
  if (tensor.shape != target.global_shape)
    throw Error("checkpoint " + directory_.string() + ": '" + target.name + "' is " + format_dims(tensor.shape) +
                " there but the model expects " + format_dims(target.global_shape) +
                "; load it with the model flags it was saved with (its metadata.json model_args)");
  if (!target.slice.fits(tensor.shape) || target.local.shape() != target.slice.sizes)
    throw Error("cannot read " + target.slice.describe() + " of '" + target.name + "' " + format_dims(tensor.shape) +
                " into " + target.local.describe());
  int64_t filled = 0;
  for (const ShardLocation& shard : tensor.shards) {
    const std::optional<TensorSlice> common = intersect(shard.slice, target.slice);
    if (!common) continue;
    const Tensor source = tensor_view(files_.at(shard.file).tensor(shard.key));
    view_of_region(target.local, target.slice, *common).copy_from(view_of_region(source, shard.slice, *common));
    filled += common->numel();
  }
  if (filled != target.slice.numel())
    throw Error("checkpoint " + directory_.string() + ": the shards of '" + target.name + "' cover only " +
                std::to_string(filled) + " of the " + std::to_string(target.slice.numel()) +
                " elements asked for; the checkpoint is inconsistent: save or convert it again");
}

Tensor NativeCheckpoint::read_whole(const std::string& name) const {
  const CheckpointTensor& tensor = stored(name);
  ShardedTensor whole = whole_tensor(name, Tensor::empty(tensor.shape, dtype_from_safetensors(tensor.dtype)));
  read(whole);
  return whole.local;
}

}  // namespace moebench::ckpt
