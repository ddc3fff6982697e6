#pragma once
// The `pattern` of tokenizer.json's Split, Replace and Strip steps:
// {"String": "..."} (a literal) or {"Regex": "..."}. Regexes run on ICU, the
// standard Unicode regex engine, because the Qwen and DeepSeek pre-tokenizers
// need Unicode categories (\p{L}, \p{N}, ...), which std::regex lacks. ICU
// reads the UTF-8 text in place, so match offsets are byte offsets.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <unicode/uversion.h>

U_NAMESPACE_BEGIN
class RegexPattern;
U_NAMESPACE_END

namespace moebench::data {

class TextPattern {
 public:
  // `where` names the step in error messages ("pre_tokenizer Split").
  static TextPattern from_json(const nlohmann::json& pattern, const std::string& where);
  static TextPattern literal(std::string text);
  static TextPattern regex(const std::string& expression, const std::string& where);

  TextPattern(TextPattern&&) noexcept;
  TextPattern& operator=(TextPattern&&) noexcept;
  ~TextPattern();

  // [begin, end) byte ranges of the non-empty, non-overlapping matches, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  std::string replace_all(std::string_view text, std::string_view replacement) const;

 private:
  TextPattern() = default;
  std::string literal_;
  std::unique_ptr<icu::RegexPattern> regex_;  // null for a literal
};

}  // namespace moebench::data
