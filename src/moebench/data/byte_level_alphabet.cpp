#include "moebench/data/byte_level_alphabet.h"

#include <unicode/utf8.h>

namespace moebench::data {

namespace {

bool printable_latin1(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

}  // namespace

const ByteLevelAlphabet& ByteLevelAlphabet::instance() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_character_.fill(-1);
  char32_t next_unprintable = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t character = printable_latin1(byte) ? char32_t(byte) : next_unprintable++;
    character_of_byte_[byte] = character;
    byte_of_character_[character] = int16_t(byte);
  }
}

std::string ByteLevelAlphabet::encode(std::string_view bytes) const {
  std::string characters;
  characters.reserve(bytes.size() * 2);
  for (const char byte : bytes) {
    const char32_t character = character_of_byte_[uint8_t(byte)];
    if (character < 0x80) {
      characters += char(character);
    } else {  // all characters are below U+0800: two UTF-8 bytes
      characters += char(0xC0 | (character >> 6));
      characters += char(0x80 | (character & 0x3F));
    }
  }
  return characters;
}

std::optional<std::string> ByteLevelAlphabet::decode(std::string_view characters) const {
  std::string bytes;
  bytes.reserve(characters.size());
  const auto* text = reinterpret_cast<const uint8_t*>(characters.data());
  const int32_t length = int32_t(characters.size());
  for (int32_t i = 0; i < length;) {
    UChar32 character = 0;
    U8_NEXT(text, i, length, character);
    if (character < 0 || size_t(character) >= byte_of_character_.size() || byte_of_character_[character] < 0) {
      return std::nullopt;
    }
    bytes += char(byte_of_character_[character]);
  }
  return bytes;
}

}  // namespace moebench::data
