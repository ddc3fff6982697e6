#pragma once
// Megatron's GPTDataset: fixed-length training samples cut from the token
// stream of one split of one corpus, documents concatenated, epochs repeated
// and shuffled as gpt_indices.h describes, the indices cached on disk.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "moebench/data/dataset_split.h"
#include "moebench/data/gpt_indices.h"
#include "moebench/data/indexed_dataset.h"

namespace moebench::data {

// What the trainer consumes: seq_length + 1 tokens, of which the first
// seq_length are the model input and the last seq_length the labels.
struct GptSample {
  std::vector<int64_t> text;    // [seq_length + 1]
  std::vector<float> loss_mask;  // [seq_length]: 1, or 0 where the input token is EOD and EOD is masked

  std::span<const int64_t> tokens() const { return {text.data(), text.size() - 1}; }
  std::span<const int64_t> labels() const { return {text.data() + 1, text.size() - 1}; }
};

struct GptDatasetConfig {
  int64_t seq_length = 0;
  uint64_t seed = 0;
  std::filesystem::path cache_directory;  // --data-cache-path; empty: indices are not cached
  // --eod-mask-loss: no loss where the input token is the end-of-document token.
  bool eod_mask_loss = false;
  int64_t eod_token = -1;
};

class GptDataset {
 public:
  // `samples`: how many the caller will draw; none builds one epoch. The
  // dataset may hold more (whole epochs are laid out), never fewer.
  GptDataset(std::shared_ptr<const IndexedDatasetReader> corpus, DataSplit split, SequenceRange sequences,
             std::optional<int64_t> samples, const GptDatasetConfig& config);

  int64_t size() const { return indices_.sample_count(); }
  GptSample sample(int64_t index) const;

  const GptIndices& indices() const { return indices_; }
  // Everything the indices depend on; the cache key, and part of a blend's.
  const std::string& description() const { return description_; }
  // False when the indices came from the cache.
  bool built_anew() const { return built_anew_; }

 private:
  std::shared_ptr<const IndexedDatasetReader> corpus_;
  GptDatasetConfig config_;
  std::string description_;
  GptIndices indices_;
  bool built_anew_ = false;
};

// Loss mask for a sample's input tokens, as Megatron's
// _get_ltor_masks_and_position_ids computes it.
std::vector<float> gpt_loss_mask(std::span<const int64_t> tokens, const GptDatasetConfig& config);

}  // namespace moebench::data
