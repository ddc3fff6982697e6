#include "moebench/data/gpt_indices.h"

#include <limits>
#include <numeric>
#include <string>

#include "moebench/core/error.h"

namespace moebench::data {
namespace {

// Uniform in [0, bound) by rejection, so no value is favoured.
uint64_t uniform_below(uint64_t bound, std::mt19937_64& generator) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t draw;
  do draw = generator();
  while (draw >= limit);
  return draw % bound;
}

std::vector<int64_t> shuffled_epochs(std::span<const int64_t> sequences, int64_t epochs,
                                     std::mt19937_64& generator) {
  std::vector<int64_t> index;
  index.reserve(sequences.size() * size_t(epochs));
  for (int64_t e = 0; e < epochs; ++e) index.insert(index.end(), sequences.begin(), sequences.end());
  seeded_shuffle(index, generator);
  return index;
}

std::vector<int64_t> shuffled_range(int64_t begin, int64_t end, std::mt19937_64& generator) {
  std::vector<int64_t> range(size_t(end - begin));
  std::iota(range.begin(), range.end(), begin);
  seeded_shuffle(range, generator);
  return range;
}

// Walks the document index seq_length tokens at a time. Each sample takes
// seq_length + 1 tokens counted from its first; the last of them is where the
// next sample begins.
std::vector<int64_t> build_sample_index(std::span<const int32_t> lengths, const std::vector<int64_t>& documents,
                                        int64_t seq_length, int64_t samples) {
  std::vector<int64_t> index;
  index.reserve(size_t(2 * (samples + 1)));
  int64_t position = 0, offset = 0;
  index.push_back(position);
  index.push_back(offset);
  for (int64_t s = 0; s < samples; ++s) {
    int64_t needed = seq_length + 1;
    for (;;) {
      const int64_t available = lengths[size_t(documents[size_t(position)])] - offset;
      if (available >= needed) {
        offset += needed - 1;
        break;
      }
      needed -= available;
      ++position;
      offset = 0;
      // The sample count was derived from the token count, so the walk cannot run off the end.
      if (position == int64_t(documents.size())) throw Error("internal: the sample index ran past the documents");
    }
    index.push_back(position);
    index.push_back(offset);
  }
  return index;
}

}  // namespace

void seeded_shuffle(std::span<int64_t> values, std::mt19937_64& generator) {
  for (size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[uniform_below(i, generator)]);
}

GptIndices build_gpt_indices(const GptIndicesRequest& request) {
  const int64_t seq_length = request.seq_length;
  if (seq_length < 1) throw Error("--seq-length " + std::to_string(seq_length) + " must be at least 1");
  int64_t tokens_per_epoch = 0;
  for (const int64_t sequence : request.split_sequences)
    tokens_per_epoch += request.sequence_lengths[size_t(sequence)];
  if (tokens_per_epoch < 2)
    throw Error("the split holds " + std::to_string(tokens_per_epoch) +
                " tokens, too few for one sample; give it a larger share in --split or more data");
  if (request.samples && *request.samples < 0)
    throw Error("requested sample count " + std::to_string(*request.samples) + " is negative");

  // Enough epochs that the tokens cover the samples plus the one extra token
  // the last sample's label needs.
  GptIndices result;
  result.epochs = 1;
  if (request.samples) {
    const int64_t tokens_needed = *request.samples * seq_length + 1;
    result.epochs = (tokens_needed + tokens_per_epoch - 1) / tokens_per_epoch;
    if (result.epochs < 1) result.epochs = 1;
  }
  const int64_t epochs = result.epochs;

  // As Megatron: when the last epoch contributes under 80% of an epoch's
  // samples, it is shuffled on its own, so its few samples are not spread
  // thinly over the whole run.
  bool separate_final_epoch = false;
  int64_t samples_before_final_epoch = 0;
  if (epochs > 1) {
    samples_before_final_epoch = ((epochs - 1) * tokens_per_epoch - 1) / seq_length;
    const int64_t samples_from_final_epoch = *request.samples - samples_before_final_epoch;
    const int64_t samples_per_epoch = (tokens_per_epoch - 1) / seq_length;
    separate_final_epoch = samples_from_final_epoch < int64_t(0.8 * double(samples_per_epoch));
  }

  std::mt19937_64 generator(request.seed);
  if (separate_final_epoch) {
    result.document_index = shuffled_epochs(request.split_sequences, epochs - 1, generator);
    const std::vector<int64_t> last = shuffled_epochs(request.split_sequences, 1, generator);
    result.document_index.insert(result.document_index.end(), last.begin(), last.end());
  } else {
    result.document_index = shuffled_epochs(request.split_sequences, epochs, generator);
  }

  const int64_t samples = (epochs * tokens_per_epoch - 1) / seq_length;
  result.sample_index = build_sample_index(request.sequence_lengths, result.document_index, seq_length, samples);

  if (separate_final_epoch) {
    result.shuffle_index = shuffled_range(0, samples_before_final_epoch, generator);
    const std::vector<int64_t> last = shuffled_range(samples_before_final_epoch, samples, generator);
    result.shuffle_index.insert(result.shuffle_index.end(), last.begin(), last.end());
  } else {
    result.shuffle_index = shuffled_range(0, samples, generator);
  }
  return result;
}

}  // namespace moebench::data
