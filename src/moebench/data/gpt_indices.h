#pragma once
// The three indices behind Megatron's GPTDataset (docs/data.md tells the
// whole algorithm):
//   document index  the split's sequences repeated for as many epochs as the
//                   requested samples need, shuffled;
//   sample index    for sample s, the (document-index position, token offset)
//                   where it starts; it ends where sample s + 1 starts, that
//                   token included, so a sample holds seq_length + 1 tokens
//                   and neighbours share one token;
//   shuffle index   a permutation of the samples.
// The algorithm is Megatron's; the random order is not (numpy's RandomState
// is replaced by std::mt19937_64 driving a Fisher-Yates shuffle).
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace moebench::data {

struct GptIndices {
  std::vector<int64_t> document_index;  // sequence ids, [epochs x split sequences]
  std::vector<int64_t> sample_index;    // [(samples + 1) x 2]: position in document_index, token offset
  std::vector<int64_t> shuffle_index;   // [samples]
  int64_t epochs = 0;

  int64_t sample_count() const { return int64_t(shuffle_index.size()); }
};

struct GptIndicesRequest {
  // Lengths of every sequence of the corpus, and the ids of the split's.
  std::span<const int32_t> sequence_lengths;
  std::span<const int64_t> split_sequences;
  int64_t seq_length = 0;
  // Samples wanted; none: exactly one epoch.
  std::optional<int64_t> samples;
  uint64_t seed = 0;
};

GptIndices build_gpt_indices(const GptIndicesRequest& request);

// Fisher-Yates with unbiased draws from mt19937_64: the same permutation on
// every platform (std::shuffle's is left to the library).
void seeded_shuffle(std::span<int64_t> values, std::mt19937_64& generator);

}  // namespace moebench::data
