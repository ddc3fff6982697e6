#pragma once
// tokenizer.json's `added_tokens` (special tokens such as <|im_start|> and
// </s>, and other added words). They are cut out of the text before
// normalization and pre-tokenization, matched leftmost and then longest
// first, as Hugging Face does: tokens with `normalized: false` on the raw
// text, the others on the normalized text. `lstrip`/`rstrip` let a match
// swallow the whitespace beside it; `single_word` refuses a match inside a word.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moebench::data {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A stretch of text: an added token (`id` set) or text between added tokens.
struct TextSection {
  std::string_view text;
  std::optional<int64_t> id;
  size_t offset = 0;  // of `text` in the string that was split
};

class AddedVocabulary {
 public:
  explicit AddedVocabulary(const nlohmann::json& added_tokens);

  // Cuts `text` at the added tokens whose `normalized` flag equals `normalized`.
  std::vector<TextSection> split(std::string_view text, bool normalized) const;
  bool has_normalized_tokens() const { return has_normalized_tokens_; }

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(std::string_view content) const;
  const AddedToken* find(int64_t id) const;

 private:
  struct Match {
    size_t begin, end;
    const AddedToken* token;
  };
  std::optional<Match> match_at(std::string_view text, size_t position, bool normalized) const;

  std::vector<AddedToken> tokens_;
  // Indices into tokens_ by [normalized][first byte], longest content first.
  std::array<std::array<std::vector<size_t>, 256>, 2> by_first_byte_;
  bool has_normalized_tokens_ = false;
  std::unordered_map<std::string, size_t> index_of_content_;
  std::unordered_map<int64_t, size_t> index_of_id_;
};

}  // namespace moebench::data
