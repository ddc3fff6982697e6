#include "moebench/data/mock_dataset.h"

#include <numeric>
#include <string>
#include <utility>

#include "moebench/core/error.h"

namespace moebench::data {
namespace {

const char* split_stream(Split split) {
  return split == Split::Train ? "mock-data/train/start-token" : "mock-data/validation/start-token";
}

// Sattolo's shuffle gives a permutation that is one cycle over all tokens: no
// token maps to itself and every walk visits the whole vocabulary.
std::vector<int64_t> single_cycle_permutation(int64_t size, const CounterRng& rng) {
  std::vector<int64_t> next(size_t(size), 0);
  std::iota(next.begin(), next.end(), int64_t(0));
  for (int64_t i = size - 1; i > 0; --i) std::swap(next[size_t(i)], next[size_t(rng.bits(uint64_t(i)) % uint64_t(i))]);
  return next;
}

}  // namespace

MockDataset::MockDataset(int64_t seq_length, int64_t vocab_size, uint64_t seed, Split split)
    : seq_length_(seq_length), vocab_size_(vocab_size), start_tokens_(seed, split_stream(split)) {
  if (seq_length < 1 || vocab_size < 2)
    throw Error("mock data needs seq-length >= 1 and a vocabulary of at least 2 tokens, got seq-length " +
                std::to_string(seq_length) + " and vocabulary " + std::to_string(vocab_size));
  successor_ = single_cycle_permutation(vocab_size, CounterRng(seed, "mock-data/successor"));
}

std::vector<int64_t> MockDataset::sample(int64_t index) const {
  if (index < 0) throw Error("mock data sample index " + std::to_string(index) + " is negative");
  std::vector<int64_t> tokens(size_t(seq_length_ + 1));
  tokens[0] = int64_t(start_tokens_.bits(uint64_t(index)) % uint64_t(vocab_size_));
  for (size_t s = 1; s < tokens.size(); ++s) tokens[s] = successor(tokens[s - 1]);
  return tokens;
}

Microbatch MockDataset::microbatch(int64_t first_sample, int64_t batch_size) const {
  const std::vector<int64_t> shape = {batch_size, seq_length_};
  Microbatch batch{Tensor::empty(shape, DType::I64), Tensor::empty(shape, DType::I64),
                   Tensor::empty(shape, DType::F32)};
  batch.loss_mask.fill_(1.0);
  int64_t* tokens = batch.tokens.data<int64_t>();
  int64_t* labels = batch.labels.data<int64_t>();
  for (int64_t b = 0; b < batch_size; ++b) {
    const std::vector<int64_t> sequence = sample(first_sample + b);
    for (int64_t s = 0; s < seq_length_; ++s) {
      tokens[b * seq_length_ + s] = sequence[size_t(s)];
      labels[b * seq_length_ + s] = sequence[size_t(s + 1)];
    }
  }
  return batch;
}

}  // namespace moebench::data
