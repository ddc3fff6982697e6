#pragma once
// tokenizer.json's `normalizer`: rewrites each stretch of text between added
// tokens before pre-tokenization. Supported: NFC, NFD, NFKC, NFKD (ICU),
// Prepend, Replace and Sequence of these, which covers the Qwen, DeepSeek and
// Llama/Mistral files.
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace moebench::data {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;

  // Null for a JSON null; throws an Error naming an unsupported type.
  static std::unique_ptr<Normalizer> from_json(const nlohmann::json& config);
};

}  // namespace moebench::data
