#include "moebench/data/bpe_model.h"

#include <unicode/utf8.h>

#include <cstdio>
#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>

#include "moebench/core/error.h"

namespace moebench::data {

namespace {

std::pair<std::string, std::string> merge_parts(const nlohmann::json& merge) {
  // Older files write a merge as "left right", newer ones as ["left", "right"]
  // (which allows spaces inside tokens).
  if (merge.is_array() && merge.size() == 2) return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  if (merge.is_string()) {
    const std::string text = merge.get<std::string>();
    const size_t space = text.find(' ');
    if (space != std::string::npos && text.find(' ', space + 1) == std::string::npos) {
      return {text.substr(0, space), text.substr(space + 1)};
    }
  }
  throw Error("tokenizer.json: merge " + merge.dump() + " is neither \"left right\" nor [\"left\", \"right\"]");
}

std::string optional_string(const nlohmann::json& model, const char* key) {
  const auto it = model.find(key);
  return it == model.end() || it->is_null() ? std::string() : it->get<std::string>();
}

// One symbol of a word being merged: a token id and its neighbours.
struct Symbol {
  int32_t id;
  int32_t previous;  // -1 at the start
  int32_t next;      // -1 at the end
  bool merged_away;  // absorbed by its left neighbour
};

struct Candidate {
  int32_t rank;
  int32_t position;  // of the left symbol
  int32_t merged_id;
  // The queue's top is the lowest rank, then the leftmost position.
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : position > other.position;
  }
};

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model) {
  int32_t largest_id = -1;
  for (const auto& [token, id] : model.at("vocab").items()) {
    vocab_.emplace(token, id.get<int32_t>());
    largest_id = std::max(largest_id, id.get<int32_t>());
  }
  tokens_.resize(size_t(largest_id + 1));
  for (const auto& [token, id] : vocab_) tokens_[size_t(id)] = token;

  const auto& merges = model.at("merges");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merge_parts(merges[rank]);
    const auto left_id = vocab_.find(left), right_id = vocab_.find(right), merged_id = vocab_.find(left + right);
    if (left_id == vocab_.end() || right_id == vocab_.end() || merged_id == vocab_.end()) {
      throw Error("tokenizer.json: merge " + merges[rank].dump() +
                  " uses or makes a token that is not in the vocabulary; the file is corrupt");
    }
    merges_.emplace(pair_key(left_id->second, right_id->second), Merge{int32_t(rank), merged_id->second});
  }

  byte_fallback_ = model.value("byte_fallback", false);
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", byte);
    const auto it = vocab_.find(std::string_view(name));
    byte_fallback_ids_[size_t(byte)] = it == vocab_.end() ? -1 : it->second;
  }
  if (const std::string unk = optional_string(model, "unk_token"); !unk.empty()) {
    const auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw Error("tokenizer.json: unk_token '" + unk + "' is not in the vocabulary");
    unk_id_ = it->second;
  }
  fuse_unk_ = model.value("fuse_unk", false);
  ignore_merges_ = model.value("ignore_merges", false);
  continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
}

std::optional<int64_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size() || tokens_[size_t(id)].empty()) return nullptr;
  return &tokens_[size_t(id)];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int64_t>& ids) const {
  if (word.size() > kCacheMaxWordBytes) {
    const std::vector<int32_t> word_ids = merge_word(word);
    ids.insert(ids.end(), word_ids.begin(), word_ids.end());
    return;
  }
  {
    std::shared_lock lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids = merge_word(word);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  std::unique_lock lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(word_ids));
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) return {it->second};
  }
  // The word's characters as initial symbols, as Hugging Face's BPE makes them.
  std::vector<Symbol> symbols;
  auto add_symbol = [&](int32_t id) {
    const auto position = int32_t(symbols.size());
    symbols.push_back({id, position - 1, -1, false});
    if (position > 0) symbols[size_t(position) - 1].next = position;
  };
  int32_t pending_unk = -1;  // the unk id of an unknown run waiting to be fused; -1: none
  const auto* bytes = reinterpret_cast<const uint8_t*>(word.data());
  const auto length = int32_t(word.size());
  for (int32_t begin = 0; begin < length;) {
    int32_t end = begin;
    U8_FWD_1(bytes, end, length);
    std::string character(word.substr(size_t(begin), size_t(end - begin)));
    if (begin > 0) character.insert(0, continuing_subword_prefix_);
    if (end == length) character += end_of_word_suffix_;
    const auto known = vocab_.find(character);
    const bool fallback_bytes =
        known == vocab_.end() && byte_fallback_ &&
        std::all_of(bytes + begin, bytes + end, [&](uint8_t b) { return byte_fallback_ids_[b] >= 0; });
    if (known != vocab_.end() || fallback_bytes) {
      if (pending_unk >= 0) add_symbol(pending_unk);
      pending_unk = -1;
      if (known != vocab_.end()) {
        add_symbol(known->second);
      } else {
        for (int32_t b = begin; b < end; ++b) add_symbol(byte_fallback_ids_[bytes[b]]);
      }
    } else if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) add_symbol(pending_unk);
      pending_unk = *unk_id_;
    } else {
      throw Error("BPE: character '" + character + "' of the word '" + std::string(word) +
                  "' is not in the vocabulary and the model has no unk_token or byte fallback for it");
    }
    begin = end;
  }
  if (pending_unk >= 0) add_symbol(pending_unk);

  std::priority_queue<Candidate> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* merge = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({merge->rank, int32_t(i), merge->merged_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[size_t(top.position)];
    if (left.merged_away || left.next < 0) continue;
    Symbol& right = symbols[size_t(left.next)];
    // A stale candidate: one of its symbols has changed since it was queued.
    const Merge* merge = find_merge(left.id, right.id);
    if (merge == nullptr || merge->merged_id != top.merged_id) continue;
    left.id = top.merged_id;
    right.merged_away = true;
    left.next = right.next;
    if (left.next >= 0) symbols[size_t(left.next)].previous = top.position;
    if (left.previous >= 0) {
      if (const Merge* before = find_merge(symbols[size_t(left.previous)].id, left.id)) {
        queue.push({before->rank, left.previous, before->merged_id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* after = find_merge(left.id, symbols[size_t(left.next)].id)) {
        queue.push({after->rank, top.position, after->merged_id});
      }
    }
  }
  std::vector<int32_t> ids;
  for (const Symbol& symbol : symbols) {
    if (!symbol.merged_away) ids.push_back(symbol.id);
  }
  return ids;
}

}  // namespace moebench::data
