#pragma once
// tokenizer.json's `pre_tokenizer`: cuts normalized text into pieces (words)
// that the BPE model encodes one by one. Supported: Split (a String or Regex
// pattern with any of Hugging Face's five delimiter behaviours), ByteLevel
// (GPT-2's byte alphabet, with or without its regex), Metaspace (spaces as
// "▁", prepend_scheme always/first/never) and Sequence of these.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moebench::data {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece further. `first_section` is true for text that starts
  // the input (it is not preceded by an added token): Metaspace's "first".
  virtual std::vector<std::string> pre_tokenize(std::vector<std::string> pieces, bool first_section) const = 0;

  // Null for a JSON null; throws an Error naming an unsupported type.
  static std::unique_ptr<PreTokenizer> from_json(const nlohmann::json& config);
};

}  // namespace moebench::data
