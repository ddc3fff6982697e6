#include "moebench/data/blended_dataset.h"

#include <cmath>
#include <sstream>

#include "moebench/core/error.h"

namespace moebench::data {
namespace {

bool parse_number(const std::string& word, double& value) {
  try {
    size_t used = 0;
    value = std::stod(word, &used);
    return used == word.size();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

DataBlend parse_data_blend(const std::vector<std::string>& words) {
  DataBlend blend;
  // As Megatron: an even count whose every other word is a number is
  // weight/path pairs; anything else is a list of paths.
  bool weighted = !words.empty() && words.size() % 2 == 0;
  for (size_t i = 0; weighted && i < words.size(); i += 2) {
    double weight = 0;
    weighted = parse_number(words[i], weight);
    blend.weights.push_back(weight);
  }
  if (!weighted) blend.weights.clear();
  for (size_t i = weighted ? 1 : 0; i < words.size(); i += weighted ? 2 : 1) blend.prefixes.push_back(words[i]);
  if (blend.prefixes.empty()) throw Error("--data-path is empty; give a corpus prefix or weight/prefix pairs");
  return blend;
}

std::vector<double> normalize_weights(const std::vector<double>& weights) {
  double sum = 0;
  for (const double weight : weights) {
    if (!(weight >= 0)) throw Error("blend weight " + std::to_string(weight) + " is negative; weights must be >= 0");
    sum += weight;
  }
  if (!(sum > 0)) throw Error("blend weights sum to 0; give at least one positive weight");
  std::vector<double> normalized;
  for (const double weight : weights) normalized.push_back(weight / sum);
  return normalized;
}

std::vector<int64_t> samples_per_dataset(const std::vector<double>& normalized_weights, int64_t size,
                                         double surplus) {
  std::vector<int64_t> samples;
  for (const double weight : normalized_weights)
    samples.push_back(int64_t(std::ceil(std::ceil(double(size) * weight) * (1.0 + surplus))));
  return samples;
}

BlendingIndices build_blending_indices(const std::vector<double>& normalized_weights, int64_t size) {
  BlendingIndices indices;
  indices.dataset_index.reserve(size_t(size));
  indices.dataset_sample_index.reserve(size_t(size));
  std::vector<int64_t> drawn(normalized_weights.size(), 0);
  for (int64_t i = 0; i < size; ++i) {
    // Megatron measures the lag against max(i, 1) samples; the first strict
    // maximum wins ties.
    const double target = std::max(double(i), 1.0);
    size_t chosen = 0;
    double largest_lag = normalized_weights[0] * target - double(drawn[0]);
    for (size_t d = 1; d < normalized_weights.size(); ++d) {
      const double lag = normalized_weights[d] * target - double(drawn[d]);
      if (lag > largest_lag) {
        largest_lag = lag;
        chosen = d;
      }
    }
    indices.dataset_index.push_back(int64_t(chosen));
    indices.dataset_sample_index.push_back(drawn[chosen]++);
  }
  return indices;
}

BlendedDataset::BlendedDataset(std::vector<std::shared_ptr<const GptDataset>> datasets, std::vector<double> weights,
                               int64_t size, const IndexCache& cache)
    : datasets_(std::move(datasets)) {
  if (datasets_.empty() || datasets_.size() != weights.size())
    throw Error("a blend needs one weight per dataset, got " + std::to_string(weights.size()) + " weights for " +
                std::to_string(datasets_.size()) + " datasets");
  if (size < 0) throw Error("blend size " + std::to_string(size) + " is negative");
  const std::vector<double> normalized = normalize_weights(weights);

  std::ostringstream description;
  description.precision(17);
  description << "BlendedDataset format=1\nsize=" << size << "\n";
  for (size_t d = 0; d < datasets_.size(); ++d)
    description << "weight=" << normalized[d] << "\n" << datasets_[d]->description() << "\n";
  if (auto arrays = cache.load(description.str(), "BlendedDataset"); arrays && arrays->size() == 2) {
    indices_.dataset_index = std::move((*arrays)[0]);
    indices_.dataset_sample_index = std::move((*arrays)[1]);
  } else {
    indices_ = build_blending_indices(normalized, size);
    built_anew_ = true;
    cache.store(description.str(), "BlendedDataset", {indices_.dataset_index, indices_.dataset_sample_index});
  }

  // Each dataset must hold every sample the blend draws from it.
  std::vector<int64_t> needed(datasets_.size(), 0);
  for (const int64_t d : indices_.dataset_index) ++needed[size_t(d)];
  for (size_t d = 0; d < datasets_.size(); ++d)
    if (needed[d] > datasets_[d]->size())
      throw Error("blend dataset " + std::to_string(d) + " holds " + std::to_string(datasets_[d]->size()) +
                  " samples but the blend draws " + std::to_string(needed[d]) +
                  "; build it with samples_per_dataset() sizes");
}

GptSample BlendedDataset::sample(int64_t index) const {
  if (index < 0 || index >= size())
    throw Error("sample " + std::to_string(index) + " is outside the blend of " + std::to_string(size()) + " samples");
  const auto dataset = size_t(indices_.dataset_index[size_t(index)]);
  return datasets_[dataset]->sample(indices_.dataset_sample_index[size_t(index)]);
}

}  // namespace moebench::data
