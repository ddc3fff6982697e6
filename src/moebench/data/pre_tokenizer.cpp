#include "moebench/data/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "moebench/core/error.h"
#include "moebench/data/byte_level_alphabet.h"
#include "moebench/data/text_pattern.h"

namespace moebench::data {

namespace {

// What becomes of the matches when a piece is split: Hugging Face's
// SplitDelimiterBehavior.
enum class Delimiter { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Delimiter delimiter_from_name(const std::string& name) {
  if (name == "Removed") return Delimiter::Removed;
  if (name == "Isolated") return Delimiter::Isolated;
  if (name == "MergedWithPrevious") return Delimiter::MergedWithPrevious;
  if (name == "MergedWithNext") return Delimiter::MergedWithNext;
  if (name == "Contiguous") return Delimiter::Contiguous;
  throw Error("tokenizer.json: Split behavior '" + name +
              "' is unknown; expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

struct Segment {
  size_t begin, end;
  bool is_match;
};

// `piece` cut at the pattern's matches (or, inverted, at what lies between
// them), the delimiters handled as `behavior` says.
std::vector<std::string> split_piece(const std::string& piece, const TextPattern& pattern, Delimiter behavior,
                                     bool invert) {
  std::vector<Segment> segments;
  size_t covered = 0;
  for (const auto& [begin, end] : pattern.find_all(piece)) {
    if (begin > covered) segments.push_back({covered, begin, invert});
    segments.push_back({begin, end, !invert});
    covered = end;
  }
  if (covered < piece.size()) segments.push_back({covered, piece.size(), invert});

  std::vector<Segment> merged;
  switch (behavior) {
    case Delimiter::Removed:
      for (const Segment& s : segments) {
        if (!s.is_match) merged.push_back(s);
      }
      break;
    case Delimiter::Isolated:
      merged = segments;
      break;
    case Delimiter::MergedWithPrevious:
      for (size_t i = 0; i < segments.size(); ++i) {
        const bool joins = segments[i].is_match && i > 0 && !segments[i - 1].is_match;
        if (joins) {
          merged.back().end = segments[i].end;
        } else {
          merged.push_back(segments[i]);
        }
      }
      break;
    case Delimiter::MergedWithNext:
      for (size_t i = segments.size(); i-- > 0;) {
        const bool joins = segments[i].is_match && i + 1 < segments.size() && !segments[i + 1].is_match;
        if (joins) {
          merged.back().begin = segments[i].begin;
        } else {
          merged.push_back(segments[i]);
        }
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case Delimiter::Contiguous:
      for (size_t i = 0; i < segments.size(); ++i) {
        if (segments[i].is_match && i > 0 && segments[i - 1].is_match) {
          merged.back().end = segments[i].end;
        } else {
          merged.push_back(segments[i]);
        }
      }
      break;
  }
  std::vector<std::string> pieces;
  pieces.reserve(merged.size());
  for (const Segment& s : merged) pieces.push_back(piece.substr(s.begin, s.end - s.begin));
  return pieces;
}

std::vector<std::string> split_all(std::vector<std::string> pieces, const TextPattern& pattern, Delimiter behavior,
                                   bool invert) {
  std::vector<std::string> split;
  for (const std::string& piece : pieces) {
    for (std::string& part : split_piece(piece, pattern, behavior, invert)) split.push_back(std::move(part));
  }
  return split;
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  explicit SplitPreTokenizer(const nlohmann::json& config)
      : pattern_(TextPattern::from_json(config.at("pattern"), "pre_tokenizer Split")),
        behavior_(delimiter_from_name(config.at("behavior").get<std::string>())),
        invert_(config.value("invert", false)) {}

  std::vector<std::string> pre_tokenize(std::vector<std::string> pieces, bool) const override {
    return split_all(std::move(pieces), pattern_, behavior_, invert_);
  }

 private:
  TextPattern pattern_;
  Delimiter behavior_;
  bool invert_;
};

// GPT-2's own split, used when a ByteLevel pre-tokenizer has use_regex.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  explicit ByteLevelPreTokenizer(const nlohmann::json& config)
      : add_prefix_space_(config.value("add_prefix_space", false)), use_regex_(config.value("use_regex", true)) {
    if (use_regex_) gpt2_pattern_ = std::make_unique<TextPattern>(TextPattern::regex(kGpt2Pattern, "ByteLevel"));
  }

  std::vector<std::string> pre_tokenize(std::vector<std::string> pieces, bool) const override {
    if (add_prefix_space_) {
      for (std::string& piece : pieces) {
        if (!piece.starts_with(' ')) piece.insert(0, 1, ' ');
      }
    }
    if (use_regex_) pieces = split_all(std::move(pieces), *gpt2_pattern_, Delimiter::Isolated, false);
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::instance();
    for (std::string& piece : pieces) piece = alphabet.encode(piece);
    return pieces;
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
  std::unique_ptr<TextPattern> gpt2_pattern_;
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };

  explicit MetaspacePreTokenizer(const nlohmann::json& config)
      : replacement_(config.value("replacement", std::string("\u2581"))),
        prepend_(prepend_from_json(config)),
        split_(config.value("split", true)),
        replacement_pattern_(TextPattern::literal(replacement_)),
        space_(TextPattern::literal(" ")) {}

  std::vector<std::string> pre_tokenize(std::vector<std::string> pieces, bool first_section) const override {
    for (std::string& piece : pieces) {
      piece = space_.replace_all(piece, replacement_);
      const bool prepend = prepend_ == Prepend::Always || (prepend_ == Prepend::First && first_section);
      if (prepend && !piece.starts_with(replacement_)) piece.insert(0, replacement_);
    }
    if (!split_) return pieces;
    return split_all(std::move(pieces), replacement_pattern_, Delimiter::MergedWithNext, false);
  }

 private:
  // Older files say add_prefix_space (true: always); newer ones prepend_scheme.
  static Prepend prepend_from_json(const nlohmann::json& config) {
    const std::string scheme =
        config.value("prepend_scheme", config.value("add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") return Prepend::Always;
    if (scheme == "first") return Prepend::First;
    if (scheme == "never") return Prepend::Never;
    throw Error("tokenizer.json: Metaspace prepend_scheme '" + scheme + "' is unknown; expected always, first or never");
  }

  std::string replacement_;
  Prepend prepend_;
  bool split_;
  TextPattern replacement_pattern_;
  TextPattern space_;
};

class PreTokenizerSequence final : public PreTokenizer {
 public:
  explicit PreTokenizerSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> pre_tokenize(std::vector<std::string> pieces, bool first_section) const override {
    for (const auto& step : steps_) pieces = step->pre_tokenize(std::move(pieces), first_section);
    return pieces;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = config.at("type").get<std::string>();
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(config);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(config);
  if (type == "Metaspace") return std::make_unique<MetaspacePreTokenizer>(config);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : config.at("pretokenizers")) steps.push_back(from_json(step));
    return std::make_unique<PreTokenizerSequence>(std::move(steps));
  }
  throw Error("tokenizer.json: pre_tokenizer type '" + type +
              "' is not supported; moebench reads Split, ByteLevel, Metaspace and Sequence");
}

}  // namespace moebench::data
