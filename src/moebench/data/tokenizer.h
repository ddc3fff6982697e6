#pragma once
// Text to token ids and back, as Megatron's --tokenizer-type names them:
// HuggingFaceTokenizer (a tokenizer.json), Llama2Tokenizer (a SentencePiece
// .model) and NullTokenizer (whitespace-separated integers, for tests and
// mock data).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moebench::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  virtual std::string decode(std::span<const int64_t> ids) const = 0;
  // Ids run from 0 to vocab_size() - 1, special tokens included.
  virtual int64_t vocab_size() const = 0;
  // The end-of-document id appended by `preprocess --append-eod`, when the tokenizer has one.
  virtual std::optional<int64_t> eod() const = 0;
  // The id Megatron's tokenize puts in front of every text it encodes, so
  // `preprocess` writes it before each document (each sentence of a list);
  // encode() never includes it. None by default.
  virtual std::optional<int64_t> bos() const { return std::nullopt; }
};

struct TokenizerOptions {
  std::string type;        // --tokenizer-type
  std::string model;       // --tokenizer-model: tokenizer.json, its directory, or a .model file
  int64_t vocab_size = 0;  // --vocab-size (NullTokenizer)
};

// Throws an Error naming the type and the allowed ones, or the missing file.
std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerOptions& options);

}  // namespace moebench::data
