#include "moebench/data/gpt_dataset.h"

#include <numeric>

#include "moebench/core/error.h"
#include "moebench/data/index_cache.h"

namespace moebench::data {
namespace {

// Bump when the index layout or algorithm changes, so old caches miss.
constexpr int kIndicesFormat = 1;

std::string describe(const IndexedDatasetReader& corpus, DataSplit split, SequenceRange sequences,
                     std::optional<int64_t> samples, const GptDatasetConfig& config) {
  return "GptDataset format=" + std::to_string(kIndicesFormat) + "\ncorpus=" + corpus_fingerprint(corpus.prefix()) +
         "\nsplit=" + data_split_name(split) + " sequences=[" + std::to_string(sequences.begin) + "," +
         std::to_string(sequences.end) + ")\nseq_length=" + std::to_string(config.seq_length) +
         "\nsamples=" + (samples ? std::to_string(*samples) : "one-epoch") + "\nseed=" + std::to_string(config.seed);
}

}  // namespace

std::vector<float> gpt_loss_mask(std::span<const int64_t> tokens, const GptDatasetConfig& config) {
  std::vector<float> mask(tokens.size(), 1.0f);
  if (config.eod_mask_loss)
    for (size_t s = 0; s < tokens.size(); ++s)
      if (tokens[s] == config.eod_token) mask[s] = 0.0f;
  return mask;
}

GptDataset::GptDataset(std::shared_ptr<const IndexedDatasetReader> corpus, DataSplit split, SequenceRange sequences,
                       std::optional<int64_t> samples, const GptDatasetConfig& config)
    : corpus_(std::move(corpus)), config_(config) {
  if (sequences.begin < 0 || sequences.end > corpus_->sequence_count() || sequences.size() < 0)
    throw Error("sequence range [" + std::to_string(sequences.begin) + ", " + std::to_string(sequences.end) +
                ") is outside corpus '" + corpus_->prefix().string() + "' of " +
                std::to_string(corpus_->sequence_count()) + " sequences");
  description_ = describe(*corpus_, split, sequences, samples, config_);
  const IndexCache cache(config_.cache_directory);
  if (auto arrays = cache.load(description_, "GptDataset-" + data_split_name(split)); arrays && arrays->size() == 4) {
    indices_.document_index = std::move((*arrays)[0]);
    indices_.sample_index = std::move((*arrays)[1]);
    indices_.shuffle_index = std::move((*arrays)[2]);
    indices_.epochs = (*arrays)[3].empty() ? 0 : (*arrays)[3][0];
    return;
  }
  std::vector<int64_t> split_sequences(size_t(sequences.size()));
  std::iota(split_sequences.begin(), split_sequences.end(), sequences.begin);
  const std::vector<int32_t> lengths = corpus_->sequence_lengths();
  try {
    indices_ = build_gpt_indices({lengths, split_sequences, config_.seq_length, samples, config_.seed});
  } catch (const Error& error) {
    throw Error("corpus '" + corpus_->prefix().string() + "', " + data_split_name(split) + " split: " + error.what());
  }
  built_anew_ = true;
  cache.store(description_, "GptDataset-" + data_split_name(split),
              {indices_.document_index, indices_.sample_index, indices_.shuffle_index, {indices_.epochs}});
}

GptSample GptDataset::sample(int64_t index) const {
  if (index < 0 || index >= size())
    throw Error("sample " + std::to_string(index) + " is outside the dataset of " + std::to_string(size()) +
                " samples of corpus '" + corpus_->prefix().string() + "'");
  const int64_t shuffled = indices_.shuffle_index[size_t(index)];
  const int64_t first = indices_.sample_index[size_t(2 * shuffled)];
  const int64_t first_offset = indices_.sample_index[size_t(2 * shuffled + 1)];
  const int64_t last = indices_.sample_index[size_t(2 * shuffled + 2)];
  const int64_t last_offset = indices_.sample_index[size_t(2 * shuffled + 3)];

  // From first_offset in the first document to last_offset (included) in the
  // last one, whole documents in between.
  GptSample sample;
  sample.text.reserve(size_t(config_.seq_length + 1));
  for (int64_t position = first; position <= last; ++position) {
    const int64_t sequence = indices_.document_index[size_t(position)];
    const int64_t begin = position == first ? first_offset : 0;
    const int64_t end = position == last ? last_offset + 1 : corpus_->sequence_length(sequence);
    corpus_->append_tokens(sequence, begin, end - begin, sample.text);
  }
  sample.loss_mask = gpt_loss_mask(sample.tokens(), config_);
  return sample;
}

}  // namespace moebench::data
