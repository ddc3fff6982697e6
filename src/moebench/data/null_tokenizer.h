#pragma once
// Megatron's NullTokenizer: the text is already token ids, written as
// whitespace-separated integers. Used for tests and mock data.
#include "moebench/data/tokenizer.h"

namespace moebench::data {

class NullTokenizer final : public Tokenizer {
 public:
  // `vocab_size` is --vocab-size; like Megatron, one id past it is added as EOD.
  explicit NullTokenizer(int64_t vocab_size);

  // Throws an Error naming the word that is not an integer in [0, vocab_size()).
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override { return vocab_size_ + 1; }
  std::optional<int64_t> eod() const override { return vocab_size_; }

 private:
  int64_t vocab_size_;
};

}  // namespace moebench::data
