#pragma once
// Megatron's HuggingFaceTokenizer, read natively from a Hugging Face
// `tokenizer.json`: added tokens -> normalizer -> pre-tokenizer -> BPE model,
// and the decoder back. It covers what the DeepSeek-V3, Qwen3 and
// Llama-2/Mixtral files use (byte-level BPE with regex splits; Metaspace BPE
// with byte fallback); an unsupported step is an Error naming it.
//
// encode() returns the text's own tokens: no BOS/EOS are added (the
// post_processor is not applied), as `add_special_tokens=False` in transformers.
// Megatron calls the tokenizer with special tokens on, so bos() is what the
// post_processor puts first: the SpecialToken (of one id) leading the "single"
// template of a TemplateProcessing, or of one inside a Sequence (`<s> $A` for
// Llama-2; Qwen3 has none). Every other post-processor, such as Roberta's and
// Bert's, and whatever a template adds after the text, is not applied. As the
// tokenizers library, it reads tokenizer.json only: transformers 4's
// LlamaTokenizerFast rebuilds the template from tokenizer_config.json's
// add_bos_token, so where the two files disagree Megatron may add a BOS we don't.
#include <filesystem>
#include <memory>

#include "moebench/data/added_vocabulary.h"
#include "moebench/data/bpe_model.h"
#include "moebench/data/normalizer.h"
#include "moebench/data/pre_tokenizer.h"
#include "moebench/data/token_decoder.h"
#include "moebench/data/tokenizer.h"

namespace moebench::data {

class HuggingFaceTokenizer final : public Tokenizer {
 public:
  // `path` is a tokenizer.json or the directory holding it. The EOD id is the
  // eos_token of a tokenizer_config.json beside it, as transformers (and so
  // Megatron) read it; without one, the first of <|endoftext|>, </s>,
  // <｜end▁of▁sentence｜> and <|end_of_text|> that the vocabulary has.
  explicit HuggingFaceTokenizer(const std::filesystem::path& path);

  std::vector<int64_t> encode(std::string_view text) const override;
  // Added tokens are written out as their text (nothing is skipped).
  std::string decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> eod() const override { return eod_; }
  std::optional<int64_t> bos() const override { return bos_; }

  // The id of a vocabulary or added token.
  std::optional<int64_t> token_to_id(std::string_view token) const;
  const AddedVocabulary& added_tokens() const { return added_; }

 private:
  void encode_section(std::string_view text, bool starts_input, std::vector<int64_t>& ids) const;

  AddedVocabulary added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<TokenDecoder> decoder_;
  int64_t vocab_size_ = 0;
  std::optional<int64_t> eod_;
  std::optional<int64_t> bos_;
};

}  // namespace moebench::data
