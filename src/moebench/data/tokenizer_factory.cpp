#include <filesystem>

#include "moebench/core/error.h"
#include "moebench/data/hf_tokenizer.h"
#include "moebench/data/null_tokenizer.h"
#include "moebench/data/sentencepiece_tokenizer.h"
#include "moebench/data/tokenizer.h"

namespace moebench::data {

namespace {

void require_model_path(const TokenizerOptions& options) {
  if (options.model.empty()) {
    throw Error(options.type + " needs --tokenizer-model (a tokenizer.json, its directory, or a .model file)");
  }
  if (!std::filesystem::exists(options.model)) {
    throw Error("--tokenizer-model " + options.model + " does not exist; point it at the tokenizer files of the model");
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerOptions& options) {
  if (options.type == "NullTokenizer") return std::make_unique<NullTokenizer>(options.vocab_size);
  if (options.type == "HuggingFaceTokenizer") {
    require_model_path(options);
    return std::make_unique<HuggingFaceTokenizer>(options.model);
  }
  if (options.type == "Llama2Tokenizer") {
    require_model_path(options);
    return std::make_unique<SentencePieceTokenizer>(options.model);
  }
  throw Error("--tokenizer-type '" + options.type +
              "' is not supported; use HuggingFaceTokenizer, Llama2Tokenizer or NullTokenizer");
}

}  // namespace moebench::data
