#pragma once
// tokenizer.json's `decoder`: turns the tokens of a sequence of ids back into
// text. Like Hugging Face's, each step maps a list of token strings to another,
// and the last list is concatenated. Supported: ByteLevel, Metaspace, Replace,
// ByteFallback, Fuse, Strip and Sequence of these.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moebench::data {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;

  // Null for a JSON null; throws an Error naming an unsupported type.
  static std::unique_ptr<TokenDecoder> from_json(const nlohmann::json& config);
};

}  // namespace moebench::data
