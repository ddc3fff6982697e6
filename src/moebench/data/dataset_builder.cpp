#include "moebench/data/dataset_builder.h"

#include <memory>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/blended_dataset.h"
#include "moebench/data/dataset_split.h"
#include "moebench/data/index_cache.h"

namespace moebench::data {
namespace {

using Corpora = std::vector<std::shared_ptr<const IndexedDatasetReader>>;

int64_t tokens_in(const IndexedDatasetReader& corpus, SequenceRange sequences) {
  int64_t tokens = 0;
  for (int64_t s = sequences.begin; s < sequences.end; ++s) tokens += corpus.sequence_length(s);
  return tokens;
}

std::shared_ptr<const GptMicrobatchSource> build_split(const Corpora& corpora, const std::vector<double>& weights,
                                                       DataSplit split, const SplitBookends& bookends,
                                                       int64_t samples, const GptDatasetConfig& config) {
  std::vector<SequenceRange> ranges;
  for (const auto& corpus : corpora) ranges.push_back(split_sequences(bookends, corpus->sequence_count()));
  // A single corpus without a weight is used directly, as Megatron does.
  if (corpora.size() == 1 && weights.empty())
    return std::make_shared<const GptMicrobatchSource>(
        std::make_shared<const GptDataset>(corpora[0], split, ranges[0], samples, config), config.seq_length);

  std::vector<double> blend_weights = weights;
  if (blend_weights.empty())
    for (size_t c = 0; c < corpora.size(); ++c) blend_weights.push_back(double(tokens_in(*corpora[c], ranges[c])));
  const std::vector<double> normalized = normalize_weights(blend_weights);
  const std::vector<int64_t> per_dataset = samples_per_dataset(normalized, samples, kMidLevelDatasetSurplus);
  std::vector<std::shared_ptr<const GptDataset>> datasets;
  for (size_t c = 0; c < corpora.size(); ++c)
    datasets.push_back(std::make_shared<const GptDataset>(corpora[c], split, ranges[c], per_dataset[c], config));
  return std::make_shared<const GptMicrobatchSource>(
      std::make_shared<const BlendedDataset>(std::move(datasets), normalized, samples,
                                             IndexCache(config.cache_directory)),
      config.seq_length);
}

}  // namespace

SplitSampleCounts megatron_sample_counts(int64_t train_iters, int64_t train_samples, int64_t eval_interval,
                                         int64_t eval_iters, int64_t global_batch) {
  if (eval_iters > 0 && eval_interval < 1)
    throw Error("--eval-interval " + std::to_string(eval_interval) +
                " must be positive to size the validation data; set it, or --eval-iters 0 to skip evaluation");
  return {train_samples > 0 ? train_samples : train_iters * global_batch,
          eval_iters > 0 ? (train_iters / eval_interval + 1) * eval_iters * global_batch : 0};
}

TrainingDatasets build_training_datasets(const TrainingDataConfig& config) {
  const DataBlend blend = parse_data_blend(config.data_path);
  const auto bookends = parse_split(config.split);
  const auto& train_share = bookends[size_t(DataSplit::Train)];
  const auto& valid_share = bookends[size_t(DataSplit::Valid)];
  if (!train_share)
    throw Error("--split '" + config.split + "' gives training no share of the data; write e.g. 99,1,0");
  Corpora corpora;
  for (const std::string& prefix : blend.prefixes) corpora.push_back(std::make_shared<const IndexedDatasetReader>(prefix));

  TrainingDatasets datasets;
  datasets.train =
      build_split(corpora, blend.weights, DataSplit::Train, *train_share, config.samples.train, config.dataset);
  if (valid_share && config.samples.valid > 0)
    datasets.validation =
        build_split(corpora, blend.weights, DataSplit::Valid, *valid_share, config.samples.valid, config.dataset);
  return datasets;
}

}  // namespace moebench::data
