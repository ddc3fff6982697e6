#pragma once
// GPT-2's byte-to-unicode map, which byte-level BPE vocabularies are written
// in: every byte becomes one printable character (printable Latin-1 bytes map
// to themselves, the others to U+0100 onwards), so any byte string is a
// string of vocabulary characters.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moebench::data {

class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& instance();

  // Each byte of `bytes` as its character, in UTF-8.
  std::string encode(std::string_view bytes) const;
  // The bytes behind a string of alphabet characters; nullopt when one of its
  // characters is not in the alphabet.
  std::optional<std::string> decode(std::string_view characters) const;

 private:
  ByteLevelAlphabet();
  std::array<char32_t, 256> character_of_byte_{};
  std::array<int16_t, 324> byte_of_character_{};  // -1: not in the alphabet; all characters are < 324
};

}  // namespace moebench::data
