#include "moebench/data/added_vocabulary.h"

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace moebench::data {

namespace {

const uint8_t* bytes_of(std::string_view text) { return reinterpret_cast<const uint8_t*>(text.data()); }

// The code point that ends just before `position`, and the one that starts at it (-1 at the ends).
UChar32 character_before(std::string_view text, size_t position) {
  if (position == 0) return -1;
  auto index = int32_t(position);
  UChar32 character = 0;
  U8_PREV(bytes_of(text), 0, index, character);
  return character;
}

UChar32 character_at(std::string_view text, size_t position) {
  if (position >= text.size()) return -1;
  auto index = int32_t(position);
  UChar32 character = 0;
  U8_NEXT(bytes_of(text), index, int32_t(text.size()), character);
  return character;
}

bool is_word_character(UChar32 character) { return character >= 0 && (u_isalnum(character) || character == '_'); }
bool is_white_space(UChar32 character) { return character >= 0 && u_isUWhiteSpace(character); }

}  // namespace

AddedVocabulary::AddedVocabulary(const nlohmann::json& added_tokens) {
  for (const auto& entry : added_tokens) {
    AddedToken token;
    token.content = entry.at("content").get<std::string>();
    token.id = entry.at("id").get<int64_t>();
    token.special = entry.value("special", false);
    token.single_word = entry.value("single_word", false);
    token.lstrip = entry.value("lstrip", false);
    token.rstrip = entry.value("rstrip", false);
    token.normalized = entry.value("normalized", !token.special);
    if (!token.content.empty()) tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[tokens_[i].normalized][uint8_t(tokens_[i].content[0])].push_back(i);
    has_normalized_tokens_ = has_normalized_tokens_ || tokens_[i].normalized;
    index_of_content_.emplace(tokens_[i].content, i);
    index_of_id_.emplace(tokens_[i].id, i);
  }
  for (auto& table : by_first_byte_) {
    for (auto& candidates : table) {
      std::stable_sort(candidates.begin(), candidates.end(),
                       [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
    }
  }
}

std::optional<AddedVocabulary::Match> AddedVocabulary::match_at(std::string_view text, size_t position,
                                                                bool normalized) const {
  for (const size_t index : by_first_byte_[normalized][uint8_t(text[position])]) {
    const AddedToken& token = tokens_[index];
    if (text.compare(position, token.content.size(), token.content) != 0) continue;
    size_t begin = position, end = position + token.content.size();
    if (token.single_word &&
        (is_word_character(character_before(text, begin)) || is_word_character(character_at(text, end)))) {
      continue;
    }
    while (token.lstrip && is_white_space(character_before(text, begin))) {
      U8_BACK_1(bytes_of(text), 0, begin);
    }
    while (token.rstrip && is_white_space(character_at(text, end))) {
      U8_FWD_1(bytes_of(text), end, text.size());
    }
    return Match{begin, end, &token};
  }
  return std::nullopt;
}

std::vector<TextSection> AddedVocabulary::split(std::string_view text, bool normalized) const {
  std::vector<TextSection> sections;
  size_t section_begin = 0;
  for (size_t position = 0; position < text.size();) {
    const std::optional<Match> match = match_at(text, position, normalized);
    if (!match) {
      ++position;
      continue;
    }
    const size_t match_begin = std::max(match->begin, section_begin);
    if (match_begin > section_begin) {
      sections.push_back({text.substr(section_begin, match_begin - section_begin), std::nullopt, section_begin});
    }
    sections.push_back({text.substr(match_begin, match->end - match_begin), match->token->id, match_begin});
    position = section_begin = match->end;
  }
  if (section_begin < text.size()) sections.push_back({text.substr(section_begin), std::nullopt, section_begin});
  return sections;
}

const AddedToken* AddedVocabulary::find(std::string_view content) const {
  const auto it = index_of_content_.find(std::string(content));
  return it == index_of_content_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::find(int64_t id) const {
  const auto it = index_of_id_.find(id);
  return it == index_of_id_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace moebench::data
