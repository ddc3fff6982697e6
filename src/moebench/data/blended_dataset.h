#pragma once
// Megatron's BlendedDataset: several GptDatasets drawn from by weight
// (--data-path 0.3 pathA 0.7 pathB). Sample i of the blend is sample
// dataset_sample_index[i] of dataset dataset_index[i]; both indices are built
// greedily, each step taking the dataset whose share lags its weight most, so
// after any prefix of n samples every dataset has its weight x n within one
// sample.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moebench/data/gpt_dataset.h"
#include "moebench/data/index_cache.h"

namespace moebench::data {

// The words of --data-path: "pathA" alone, "pathA pathB" (weights from their
// sizes, left to the caller), or "0.3 pathA 0.7 pathB".
struct DataBlend {
  std::vector<std::string> prefixes;
  std::vector<double> weights;  // empty when none were given
};
DataBlend parse_data_blend(const std::vector<std::string>& words);

// Weights divided by their sum; each must be >= 0 and the sum > 0.
std::vector<double> normalize_weights(const std::vector<double>& weights);

// Samples to request from each dataset for a blend of `size` samples:
// ceil(ceil(size x weight) x (1 + surplus)), Megatron's default surplus being
// 0.5% so that the greedy blend never asks a dataset for more than it has.
constexpr double kMidLevelDatasetSurplus = 0.005;
std::vector<int64_t> samples_per_dataset(const std::vector<double>& normalized_weights, int64_t size,
                                         double surplus);

struct BlendingIndices {
  std::vector<int64_t> dataset_index;         // [size]
  std::vector<int64_t> dataset_sample_index;  // [size]
};
BlendingIndices build_blending_indices(const std::vector<double>& normalized_weights, int64_t size);

class BlendedDataset {
 public:
  // `size`: samples of the blend; each dataset must hold its share of them.
  BlendedDataset(std::vector<std::shared_ptr<const GptDataset>> datasets, std::vector<double> weights, int64_t size,
                 const IndexCache& cache);

  int64_t size() const { return int64_t(indices_.dataset_index.size()); }
  GptSample sample(int64_t index) const;
  const BlendingIndices& indices() const { return indices_; }
  bool built_anew() const { return built_anew_; }

 private:
  std::vector<std::shared_ptr<const GptDataset>> datasets_;
  BlendingIndices indices_;
  bool built_anew_ = false;
};

}  // namespace moebench::data
