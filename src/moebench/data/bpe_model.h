#pragma once
// tokenizer.json's `model` of type BPE: a vocabulary, ranked merges, and what
// to do with characters outside the vocabulary (byte_fallback to <0xNN>
// tokens, else the unk token, fused when fuse_unk). Words are merged by rank
// with a priority queue, so long words cost O(n log n), and each word's ids
// are cached (encode is called from several threads; the cache is locked).
#include <array>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moebench::data {

class BpeModel {
 public:
  // Throws an Error naming a merge whose parts or result are not in the vocabulary.
  explicit BpeModel(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word to `ids`.
  void encode_word(std::string_view word, std::vector<int64_t>& ids) const;

  std::optional<int64_t> token_to_id(std::string_view token) const;
  // Null for an id the vocabulary lacks (added tokens live outside the model).
  const std::string* id_to_token(int64_t id) const;
  // One past the largest id of the vocabulary.
  int64_t vocab_size() const { return int64_t(tokens_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  struct TransparentHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  using Vocabulary = std::unordered_map<std::string, int32_t, TransparentHash, std::equal_to<>>;

  std::vector<int32_t> merge_word(std::string_view word) const;
  const Merge* find_merge(int32_t left, int32_t right) const;
  static uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

  Vocabulary vocab_;
  std::vector<std::string> tokens_;  // by id; empty where the vocabulary has a gap
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_fallback_ids_{};  // <0xNN> ids, -1 where absent
  bool byte_fallback_ = false;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;

  // The cache bounds its memory on huge corpora: at most this many words, each
  // at most this long (without a pre-tokenizer, as in Llama's file, a "word"
  // is a whole stretch of text, which seldom repeats).
  static constexpr size_t kCacheCapacity = 100'000;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, TransparentHash, std::equal_to<>> cache_;
};

}  // namespace moebench::data
