#include "moebench/data/text_pattern.h"

#include <unicode/regex.h>
#include <unicode/utext.h>

#include <nlohmann/json.hpp>

#include "moebench/core/error.h"

namespace moebench::data {

namespace {

// Hugging Face's engines (Oniguruma, Rust's regex) read \s as the Unicode
// White_Space property; ICU's \s is [\t\n\f\r\p{Z}], which lacks U+000B and
// U+0085. Spelling the property out keeps the three in agreement.
std::string with_unicode_white_space(const std::string& expression) {
  std::string rewritten;
  for (size_t i = 0; i < expression.size(); ++i) {
    if (expression[i] != '\\' || i + 1 == expression.size()) {
      rewritten += expression[i];
      continue;
    }
    const char escaped = expression[++i];
    if (escaped == 's') {
      rewritten += "\\p{White_Space}";
    } else if (escaped == 'S') {
      rewritten += "\\P{White_Space}";
    } else {
      rewritten += '\\';
      rewritten += escaped;
    }
  }
  return rewritten;
}

struct UTextCloser {
  void operator()(UText* text) const { utext_close(text); }
};

}  // namespace

TextPattern::TextPattern(TextPattern&&) noexcept = default;
TextPattern& TextPattern::operator=(TextPattern&&) noexcept = default;
TextPattern::~TextPattern() = default;

TextPattern TextPattern::literal(std::string text) {
  TextPattern pattern;
  pattern.literal_ = std::move(text);
  return pattern;
}

TextPattern TextPattern::regex(const std::string& expression, const std::string& where) {
  UErrorCode status = U_ZERO_ERROR;
  UParseError position{};
  const std::string rewritten = with_unicode_white_space(expression);
  TextPattern pattern;
  pattern.regex_.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(rewritten), 0, position, status));
  if (U_FAILURE(status)) {
    throw Error(where + ": regex '" + expression + "' does not compile with ICU (" + u_errorName(status) +
                " at offset " + std::to_string(position.offset) + "); fix the pattern in tokenizer.json");
  }
  return pattern;
}

TextPattern TextPattern::from_json(const nlohmann::json& pattern, const std::string& where) {
  if (pattern.contains("String")) return literal(pattern.at("String").get<std::string>());
  if (pattern.contains("Regex")) return regex(pattern.at("Regex").get<std::string>(), where);
  throw Error(where + ": pattern " + pattern.dump() + " is neither {\"String\": ...} nor {\"Regex\": ...}");
}

std::vector<std::pair<size_t, size_t>> TextPattern::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  if (!regex_) {
    if (literal_.empty()) return matches;
    for (size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, at + literal_.size())) {
      matches.emplace_back(at, at + literal_.size());
    }
    return matches;
  }
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<UText, UTextCloser> utext(utext_openUTF8(nullptr, text.data(), int64_t(text.size()), &status));
  std::unique_ptr<icu::RegexMatcher> matcher(regex_->matcher(status));
  if (U_FAILURE(status)) throw Error(std::string("ICU regex matcher: ") + u_errorName(status));
  matcher->reset(utext.get());
  while (matcher->find(status) && U_SUCCESS(status)) {
    const auto begin = size_t(matcher->start64(status)), end = size_t(matcher->end64(status));
    if (end > begin) matches.emplace_back(begin, end);
  }
  if (U_FAILURE(status)) throw Error(std::string("ICU regex search: ") + u_errorName(status));
  return matches;
}

std::string TextPattern::replace_all(std::string_view text, std::string_view replacement) const {
  std::string replaced;
  size_t copied = 0;
  for (const auto& [begin, end] : find_all(text)) {
    replaced.append(text.substr(copied, begin - copied));
    replaced.append(replacement);
    copied = end;
  }
  replaced.append(text.substr(copied));
  return replaced;
}

}  // namespace moebench::data
