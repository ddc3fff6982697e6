#pragma once
// Megatron's Llama2Tokenizer: a SentencePiece `.model` file (Llama-2,
// Mixtral) run by the sentencepiece library itself. Its EOD is the model's
// eos id, as in Megatron.
//
// encode() returns the text's own tokens, and bos() is none: Megatron's
// Llama2Tokenizer, a Megatron-Core SentencePiece tokenizer since the legacy
// tokenizers were removed, prepends nothing (the legacy _Llama2Tokenizer put
// the model's bos id before each text).
#include <filesystem>
#include <memory>

#include "moebench/data/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moebench::data {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `path` is a .model file or a directory holding tokenizer.model.
  explicit SentencePieceTokenizer(const std::filesystem::path& path);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> eod() const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::filesystem::path file_;
};

}  // namespace moebench::data
