#pragma once
// moebench's distributed checkpoint (layout in checkpoint_directory.h, table
// of contents in checkpoint_metadata.h). Like Megatron's torch_dist format it
// stores each tensor as the shards that the saving ranks held, each tagged
// with its slice of the global tensor, so a checkpoint saved under one
// TP/PP/EP/DP mapping loads under another: a loading rank names the slices it
// wants and reads them from whichever shards overlap them.
//
// Saving is collective: every rank writes its rank file into the staging
// directory (write_rank_file), then, once all have, one rank commits
// (commit_checkpoint): metadata.json is assembled from the rank files'
// headers and checked, the staging directory is renamed into place and the
// tracker updated.
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "moebench/ckpt/checkpoint_metadata.h"
#include "moebench/ckpt/safetensors.h"
#include "moebench/ckpt/safetensors_writer.h"
#include "moebench/ckpt/tensor_slice.h"
#include "moebench/core/tensor.h"

namespace moebench::ckpt {

// A piece of a global tensor that this rank saves or loads. `local` is a CPU
// tensor of shape slice.sizes (any strides); it is saved in its own dtype and
// loading converts into it.
struct ShardedTensor {
  std::string name;
  std::vector<int64_t> global_shape;
  TensorSlice slice;
  Tensor local;
};

// The whole of `tensor` as the one piece of `name`.
ShardedTensor whole_tensor(const std::string& name, const Tensor& tensor);

// Elements [begin, begin + run.numel()) of the row-major global tensor `name`
// as pieces (views of the 1-D `run`): how the distributed optimizer's flat
// shards are saved and loaded.
std::vector<ShardedTensor> flat_run_pieces(const std::string& name, const std::vector<int64_t>& global_shape,
                                           int64_t begin, const Tensor& run);

// What a rank file will hold of one piece, before its values exist.
struct PieceLayout {
  std::string name;
  std::vector<int64_t> global_shape;
  TensorSlice slice;
  DType dtype = DType::F32;
};

// A rank file written piece by piece, so a converter holds one piece in
// memory: the layouts are declared up front, each piece's values are written
// once (in any order), and commit() puts the complete file in place.
class RankFileWriter {
 public:
  RankFileWriter(const std::filesystem::path& staging, int rank, std::vector<PieceLayout> pieces);
  ~RankFileWriter();
  // `values`: a CPU tensor of piece `index`'s slice sizes and dtype.
  void write(size_t index, const Tensor& values);
  void commit();

 private:
  std::vector<PieceLayout> pieces_;
  std::vector<std::string> keys_;
  std::unique_ptr<SafetensorsWriter> file_;
};

// Writes this rank's pieces as <staging>/rank_<rank>.safetensors (atomically;
// an empty file for a rank that holds nothing). Throws when a piece does not
// fit its global shape.
void write_rank_file(const std::filesystem::path& staging, int rank, std::span<const ShardedTensor> shards);

// True when `file` is a whole rank file (readable, its data all there): a
// resumed conversion keeps such files.
bool is_complete_rank_file(const std::filesystem::path& file);

// Completes the checkpoint staged in staging_directory(root, name) from its
// `rank_count` rank files: fills metadata.tensors and rank_files, checks that
// the shards tile every tensor, writes metadata.json, renames the staging
// directory to <root>/<name> (swapping out an older checkpoint of the same
// name) and points the tracker at it. Throws, leaving the previous checkpoint
// in place, when a rank file is missing or the shards do not fit together.
void commit_checkpoint(const std::filesystem::path& root, CheckpointMetadata metadata, int rank_count);

class NativeCheckpoint {
 public:
  // `path`: a checkpoint directory or a root with a tracker. Opens every rank
  // file (headers only; data is mapped) and checks them against the metadata.
  explicit NativeCheckpoint(const std::filesystem::path& path);

  const std::filesystem::path& directory() const { return directory_; }
  const CheckpointMetadata& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return metadata_.tensors.contains(name); }

  // Fills target.local with target.slice of the stored tensor, converting to
  // its dtype. Throws an Error when the tensor is absent or its global shape
  // differs from target.global_shape.
  void read(const ShardedTensor& target) const;
  // The whole tensor, in its stored dtype.
  Tensor read_whole(const std::string& name) const;

 private:
  const CheckpointTensor& stored(const std::string& name) const;

  std::filesystem::path directory_;
  CheckpointMetadata metadata_;
  std::map<std::string, SafetensorsFile> files_;
};

}  // namespace moebench::ckpt
