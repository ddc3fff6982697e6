#include "moebench/data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "moebench/core/error.h"

namespace moebench::data {

namespace {

std::optional<int64_t> present(int id) { return id < 0 ? std::nullopt : std::optional<int64_t>(id); }

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& path)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()),
      file_(std::filesystem::is_directory(path) ? path / "tokenizer.model" : path) {
  if (const auto status = processor_->Load(file_.string()); !status.ok()) {
    throw Error("Llama2Tokenizer: cannot load the SentencePiece model " + file_.string() + " (" + status.ToString() +
                "); --tokenizer-model must name a .model file or a directory holding tokenizer.model");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  if (const auto status = processor_->Encode(text, &ids); !status.ok()) {
    throw Error("Llama2Tokenizer: encoding with " + file_.string() + " failed: " + status.ToString());
  }
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(std::span<const int64_t> ids) const {
  std::vector<int> narrow;
  narrow.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      throw Error("Llama2Tokenizer: id " + std::to_string(id) + " is outside the vocabulary of " + file_.string() +
                  " (0 to " + std::to_string(vocab_size() - 1) + "); the ids come from another tokenizer");
    }
    narrow.push_back(int(id));
  }
  std::string text;
  if (const auto status = processor_->Decode(narrow, &text); !status.ok()) {
    throw Error("Llama2Tokenizer: decoding with " + file_.string() + " failed: " + status.ToString());
  }
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }
std::optional<int64_t> SentencePieceTokenizer::eod() const { return present(processor_->eos_id()); }

}  // namespace moebench::data
