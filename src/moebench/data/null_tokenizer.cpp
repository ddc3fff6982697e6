#include "moebench/data/null_tokenizer.h"

#include <charconv>

#include "moebench/core/error.h"

namespace moebench::data {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

NullTokenizer::NullTokenizer(int64_t vocab_size) : vocab_size_(vocab_size) {
  if (vocab_size <= 0) {
    throw Error("NullTokenizer: --vocab-size is " + std::to_string(vocab_size) +
                "; pass the number of token ids the text uses (a positive integer)");
  }
}

std::vector<int64_t> NullTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  size_t position = 0;
  while (position < text.size()) {
    if (is_space(text[position])) {
      ++position;
      continue;
    }
    size_t end = position;
    while (end < text.size() && !is_space(text[end])) ++end;
    const std::string_view word = text.substr(position, end - position);
    int64_t id = 0;
    const auto [stop, error] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (error != std::errc() || stop != word.data() + word.size() || id < 0 || id >= vocab_size()) {
      throw Error("NullTokenizer: '" + std::string(word) + "' is not a token id in [0, " +
                  std::to_string(vocab_size()) + "); the text must be whitespace-separated integers below " +
                  "--vocab-size + 1");
    }
    ids.push_back(id);
    position = end;
  }
  return ids;
}

std::string NullTokenizer::decode(std::span<const int64_t> ids) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) text += ' ';
    text += std::to_string(ids[i]);
  }
  return text;
}

}  // namespace moebench::data
