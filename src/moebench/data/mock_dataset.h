#pragma once
// Synthetic training data in the manner of Megatron's --mock-data: sample i is
// a pure function of (seed, split, i), so runs are reproducible on any rank
// count and need no files.
//
// The sequences are learnable on purpose, so that a falling loss over a short
// run is a real signal: Megatron's mock documents count upwards (next token =
// token + 1); here every sample walks one fixed random cycle through the whole
// vocabulary (next token = successor(token), a single-cycle permutation drawn
// from the seed), starting at a random token. Only the first token of a
// sample is unpredictable, so a model that learns the successor table drives
// the loss from ln(vocab) towards ln(vocab) / seq-length. The train and
// validation splits share the cycle but draw different starting tokens, so
// the validation loss measures the same skill on unseen samples.
#include <cstdint>
#include <vector>

#include "moebench/core/rng.h"
#include "moebench/data/microbatch.h"

namespace moebench::data {

enum class Split { Train, Validation };

class MockDataset final : public MicrobatchSource {
 public:
  MockDataset(int64_t seq_length, int64_t vocab_size, uint64_t seed, Split split);

  // seq_length + 1 tokens in [0, vocab_size): inputs and the shifted labels.
  std::vector<int64_t> sample(int64_t index) const;
  // tokens = sample[0 .. S-1], labels = sample[1 .. S], loss mask all ones.
  Microbatch microbatch(int64_t first_sample, int64_t batch_size) const override;
  int64_t successor(int64_t token) const { return successor_[size_t(token)]; }

  int64_t seq_length() const { return seq_length_; }
  int64_t vocab_size() const { return vocab_size_; }

 private:
  int64_t seq_length_;
  int64_t vocab_size_;
  CounterRng start_tokens_;
  std::vector<int64_t> successor_;
};

}  // namespace moebench::data
