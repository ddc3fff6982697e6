#include "moebench/data/token_decoder.h"

#include <unicode/utf8.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "moebench/core/error.h"
#include "moebench/data/byte_level_alphabet.h"
#include "moebench/data/text_pattern.h"

namespace moebench::data {

namespace {

constexpr const char* kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Bytes that are not valid UTF-8 become U+FFFD, as Rust's from_utf8_lossy does.
std::string valid_utf8(const std::string& bytes) {
  std::string text;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto length = int32_t(bytes.size());
  for (int32_t i = 0; i < length;) {
    const int32_t begin = i;
    UChar32 character = 0;
    U8_NEXT(data, i, length, character);
    if (character < 0) {
      text += kReplacementCharacter;
    } else {
      text.append(bytes, size_t(begin), size_t(i - begin));
    }
  }
  return text;
}

class ByteLevelDecoder final : public TokenDecoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::instance();
    std::string bytes;
    for (const std::string& token : tokens) {
      // A token outside the byte alphabet (an added token such as
      // "<｜end▁of▁sentence｜>") stands for its own text.
      const std::optional<std::string> decoded = alphabet.decode(token);
      bytes += decoded ? *decoded : token;
    }
    return {valid_utf8(bytes)};
  }
};

class MetaspaceDecoder final : public TokenDecoder {
 public:
  explicit MetaspaceDecoder(const nlohmann::json& config)
      : replacement_(config.value("replacement", std::string("\u2581"))),
        strips_prefix_(config.value("prepend_scheme", config.value("add_prefix_space", true) ? "always" : "never") !=
                       "never") {}

  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    const TextPattern replacement = TextPattern::literal(replacement_);
    for (size_t i = 0; i < tokens.size(); ++i) {
      // Hugging Face drops every replacement character of the first token (the
      // prepended "▁"), and turns the others into spaces.
      tokens[i] = replacement.replace_all(tokens[i], i == 0 && strips_prefix_ ? "" : " ");
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool strips_prefix_;
};

class ReplaceDecoder final : public TokenDecoder {
 public:
  explicit ReplaceDecoder(const nlohmann::json& config)
      : pattern_(TextPattern::from_json(config.at("pattern"), "decoder Replace")),
        content_(config.at("content").get<std::string>()) {}

  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& token : tokens) token = pattern_.replace_all(token, content_);
    return tokens;
  }

 private:
  TextPattern pattern_;
  std::string content_;
};

// Runs of <0xNN> tokens become the text their bytes spell; a run that is not
// valid UTF-8 becomes one U+FFFD per byte, as in Hugging Face.
class ByteFallbackDecoder final : public TokenDecoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> decoded;
    std::string run;
    size_t run_length = 0;
    auto flush = [&] {
      if (run_length == 0) return;
      const bool valid = valid_utf8(run) == run;
      if (valid) {
        decoded.push_back(run);
      } else {
        for (size_t i = 0; i < run_length; ++i) decoded.emplace_back(kReplacementCharacter);
      }
      run.clear();
      run_length = 0;
    };
    for (std::string& token : tokens) {
      if (const int byte = byte_of(token); byte >= 0) {
        run += char(byte);
        ++run_length;
      } else {
        flush();
        decoded.push_back(std::move(token));
      }
    }
    flush();
    return decoded;
  }

 private:
  // The byte of a "<0xNN>" token, or -1.
  static int byte_of(const std::string& token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token[5] != '>') return -1;
    int byte = 0;
    for (const char digit : token.substr(3, 2)) {
      const int value = std::isdigit(uint8_t(digit)) ? digit - '0'
                        : (digit >= 'A' && digit <= 'F') ? digit - 'A' + 10
                        : (digit >= 'a' && digit <= 'f') ? digit - 'a' + 10
                                                         : -1;
      if (value < 0) return -1;
      byte = byte * 16 + value;
    }
    return byte;
  }
};

class FuseDecoder final : public TokenDecoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string fused;
    for (const std::string& token : tokens) fused += token;
    return {fused};
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder final : public TokenDecoder {
 public:
  explicit StripDecoder(const nlohmann::json& config)
      : content_(config.at("content").get<std::string>()),
        start_(config.at("start").get<size_t>()),
        stop_(config.at("stop").get<size_t>()) {}

  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i) {
        begin += content_.size();
      }
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
    return tokens;
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class TokenDecoderSequence final : public TokenDecoder {
 public:
  explicit TokenDecoderSequence(std::vector<std::unique_ptr<TokenDecoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& step : steps_) tokens = step->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<TokenDecoder>> steps_;
};

}  // namespace

std::unique_ptr<TokenDecoder> TokenDecoder::from_json(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = config.at("type").get<std::string>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(config);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(config);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(config);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<TokenDecoder>> steps;
    for (const auto& step : config.at("decoders")) steps.push_back(from_json(step));
    return std::make_unique<TokenDecoderSequence>(std::move(steps));
  }
  throw Error("tokenizer.json: decoder type '" + type +
              "' is not supported; moebench reads ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and "
              "Sequence");
}

}  // namespace moebench::data
