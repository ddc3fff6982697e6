#include "moebench/ckpt/hf_to_native.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/hf_import.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/safetensors_tensor.h"
#include "moebench/config/model_config_flags.h"
#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFp8Block = 128;  // DeepSeek-V3's weight_scale_inv covers 128 x 128 blocks
constexpr const char* kScaleSuffix = "_scale_inv";
// In the staging directory: which conversion its rank files belong to.
constexpr const char* kConversionFile = "conversion.json";

struct HubRows {
  std::string hub_name;
  int64_t begin = 0;
  int64_t rows = 0;
};

// One of our tensors: its global shape and dtype and the hub rows it concatenates.
struct PlannedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::vector<HubRows> pieces;
};

bool is_fp8(const SafetensorsTensor& tensor) { return tensor.dtype == "F8_E4M3"; }

// The hub tensors that have no parameter of their own: rotary caches, FP8
// scales (read with their weights) and layers past num_hidden_layers
// (DeepSeek-V3's multi-token-prediction layer, which moebench does not load).
bool needs_no_parameter(const std::string& name, int num_layers) {
  if (name.find("rotary_emb") != std::string::npos) return true;
  if (name.size() > 10 && name.compare(name.size() - 10, 10, kScaleSuffix) == 0) return true;
  const std::string prefix = "model.layers.";
  return name.rfind(prefix, 0) == 0 && std::stoi(name.substr(prefix.size())) >= num_layers;
}

std::vector<int64_t> row_shape(const std::vector<int64_t>& shape) {
  return shape.empty() ? std::vector<int64_t>{1} : shape;
}

// Every parameter and buffer with its shape, checked against the hub tensors
// before anything is written.
std::vector<PlannedTensor> plan(const config::ModelConfig& config, const SafetensorsCheckpoint& hub,
                                const fs::path& directory) {
  std::vector<HfTensorMapping> mappings = hf_tensor_mappings(config);
  for (HfTensorMapping& buffer : hf_buffer_mappings(config)) mappings.push_back(std::move(buffer));
  std::map<std::string, bool> used;
  std::vector<PlannedTensor> planned;
  for (const HfTensorMapping& mapping : mappings) {
    PlannedTensor tensor{mapping.name, {}, DType::F32, {}};
    for (const HfRowRange& range : mapping.pieces) {
      if (!hub.contains(range.hub_name))
        throw Error("Hugging Face checkpoint " + directory.string() + " has no tensor '" + range.hub_name +
                    "', which its config.json implies (for " + mapping.name +
                    "); the config does not describe these weights: fix config.json or download the whole model");
      const SafetensorsTensor& source = hub.tensor(range.hub_name);
      const std::vector<int64_t> shape = row_shape(source.shape);
      const int64_t rows = range.rows == 0 ? shape[0] : range.rows;
      std::vector<int64_t> ours = shape;
      ours[0] = rows;
      if (tensor.shape.empty()) {
        tensor.shape = ours;
        tensor.shape[0] = 0;
        tensor.dtype = is_fp8(source) ? DType::BF16 : dtype_from_safetensors(source.dtype);
      }
      if (range.begin + rows > shape[0] || std::vector(ours.begin() + 1, ours.end()) !=
                                               std::vector(tensor.shape.begin() + 1, tensor.shape.end()))
        throw Error("Hugging Face tensor '" + range.hub_name + "' " + format_dims(source.shape) + " does not fit " +
                    mapping.name + " as config.json " + (directory / "config.json").string() +
                    " describes it; the config does not match the weights");
      if (is_fp8(source) && !hub.contains(range.hub_name + kScaleSuffix))
        throw Error("FP8 tensor '" + range.hub_name + "' has no '" + range.hub_name + kScaleSuffix +
                    "' block scales; the checkpoint is incomplete");
      tensor.shape[0] += rows;
      tensor.pieces.push_back({range.hub_name, range.begin, rows});
      used[range.hub_name] = true;
    }
    planned.push_back(std::move(tensor));
  }
  for (const auto& [name, tensor] : hub.tensors())
    if (!used.contains(name) && !needs_no_parameter(name, config.num_layers))
      throw Error("Hugging Face tensor '" + name + "' in " + directory.string() +
                  " has no counterpart in the model its config.json describes; the config does not match the weights");
  return planned;
}

// An FP8 hub weight as bf16: each element times the inverse scale of its
// 128 x 128 block.
Tensor dequantize_fp8(const SafetensorsTensor& weight, const SafetensorsTensor& scale) {
  const int64_t rows = weight.shape.at(0), columns = weight.shape.size() > 1 ? weight.shape[1] : 1;
  const int64_t block_columns = (columns + kFp8Block - 1) / kFp8Block;
  const std::vector<float> scales = to_float_vector(scale);
  if (int64_t(scales.size()) != (rows + kFp8Block - 1) / kFp8Block * block_columns)
    throw Error("FP8 scales '" + scale.name + "' " + format_dims(scale.shape) + " do not cover '" + weight.name + "' " +
                format_dims(weight.shape) + " in 128x128 blocks; the checkpoint is damaged");
  Tensor out = Tensor::empty(weight.shape, DType::BF16);
  auto* values = out.data<bfloat16>();
  const auto* bits = reinterpret_cast<const uint8_t*>(weight.bytes.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < columns; ++c) {
      const float s = scales[size_t(r / kFp8Block * block_columns + c / kFp8Block)];
      values[r * columns + c] = bfloat16(fp8e4m3_bits_to_float(bits[r * columns + c]) * s);
    }
  return out;
}

// The hub tensor last asked for, as a Tensor; an FP8 one is dequantised once.
class HubTensors {
 public:
  explicit HubTensors(const SafetensorsCheckpoint& hub) : hub_(hub) {}
  Tensor get(const std::string& name) {
    if (name == cached_name_) return cached_;
    const SafetensorsTensor& entry = hub_.tensor(name);
    cached_ = is_fp8(entry) ? dequantize_fp8(entry, hub_.tensor(name + kScaleSuffix)) : tensor_view(entry);
    if (cached_.dim() == 0) cached_ = cached_.view({1});
    cached_name_ = name;
    return cached_;
  }

 private:
  const SafetensorsCheckpoint& hub_;
  std::string cached_name_;
  Tensor cached_;
};

// `slice` of our tensor, copied out of the hub rows it is made of.
Tensor assemble(const PlannedTensor& tensor, const TensorSlice& slice, HubTensors& hub) {
  Tensor local = Tensor::empty(slice.sizes, tensor.dtype);
  int64_t first_row = 0;  // our row where the current hub piece starts
  for (const HubRows& piece : tensor.pieces) {
    const int64_t begin = std::max(first_row, slice.offsets[0]);
    const int64_t end = std::min(first_row + piece.rows, slice.offsets[0] + slice.sizes[0]);
    if (begin < end) {
      Tensor source = hub.get(piece.hub_name);
      source = source.slice(0, piece.begin + begin - first_row, piece.begin + end - first_row);
      for (size_t d = 1; d < slice.offsets.size(); ++d)
        source = source.slice(int64_t(d), slice.offsets[d], slice.offsets[d] + slice.sizes[d]);
      local.slice(0, begin - slice.offsets[0], end - slice.offsets[0]).copy_from(source);
    }
    first_row += piece.rows;
  }
  return local;
}

std::string read_text(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Keeps the staging directory of an interrupted run of the same conversion;
// clears one left by another (other source or mapping).
void prepare_staging(const fs::path& staging, const std::string& identity) {
  if (fs::exists(staging / kConversionFile) && read_text(staging / kConversionFile) == identity) return;
  fs::remove_all(staging);
  write_file_atomically(staging / kConversionFile, identity);
}

}  // namespace

ConversionProgress convert_hf_to_native(const HfToNativeOptions& options) {
  const fs::path config_path = options.hub_directory / "config.json";
  if (!fs::exists(config_path))
    throw Error("--load " + options.hub_directory.string() + " has no config.json: give a Hugging Face model directory");
  const HfModelSpec spec = read_hf_config(config_path);
  check_mapping_fits(spec.config, options.mapping);
  const SafetensorsCheckpoint hub(options.hub_directory);
  const std::vector<PlannedTensor> planned = plan(spec.config, hub, options.hub_directory);

  const int ranks = options.mapping.rank_count();
  std::vector<std::vector<PieceLayout>> layouts(static_cast<size_t>(ranks));
  std::vector<std::vector<const PlannedTensor*>> sources(static_cast<size_t>(ranks));
  ConversionProgress progress;
  for (int rank = 0; rank < ranks; ++rank)
    for (const PlannedTensor& tensor : planned)
      for (const TensorSlice& slice :
           saved_slices(spec.config, tensor.name, tensor.shape, options.mapping, coordinates_of(options.mapping, rank))) {
        layouts[size_t(rank)].push_back({tensor.name, tensor.shape, slice, tensor.dtype});
        sources[size_t(rank)].push_back(&tensor);
        ++progress.pieces_total;
      }

  const fs::path staging = staging_directory(options.output_root, kReleaseName);
  prepare_staging(staging, fs::absolute(options.hub_directory).string() + " TP=" + std::to_string(options.mapping.tp) +
                               " PP=" + std::to_string(options.mapping.pp) + " EP=" + std::to_string(options.mapping.ep) + "\n");
  HubTensors hub_tensors(hub);
  for (int rank = 0; rank < ranks; ++rank) {
    const std::vector<PieceLayout>& pieces = layouts[size_t(rank)];
    if (is_complete_rank_file(staging / rank_file_name(rank))) {
      ++progress.ranks_skipped;
      progress.pieces_done += int64_t(pieces.size());
      continue;
    }
    RankFileWriter writer(staging, rank, pieces);
    for (size_t i = 0; i < pieces.size(); ++i) {
      const Tensor values = assemble(*sources[size_t(rank)][i], pieces[i].slice, hub_tensors);
      writer.write(i, values);
      ++progress.pieces_done;
      progress.bytes_written += int64_t(values.nbytes());
      if (options.on_progress) options.on_progress(progress);
    }
    writer.commit();
  }
  fs::remove(staging / kConversionFile);

  CheckpointMetadata metadata;
  metadata.model_args = config::model_config_flags(spec.config).to_arguments();
  metadata.conventions = spec.conventions;
  metadata.hf_config = read_text(config_path);
  commit_checkpoint(options.output_root, metadata, ranks);
  return progress;
}

}  // namespace moebench::ckpt
