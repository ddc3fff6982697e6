#include "moebench/data/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/text_pattern.h"

namespace moebench::data {

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(const std::string& form) {
    UErrorCode status = U_ZERO_ERROR;
    if (form == "NFC") form_ = icu::Normalizer2::getNFCInstance(status);
    if (form == "NFD") form_ = icu::Normalizer2::getNFDInstance(status);
    if (form == "NFKC") form_ = icu::Normalizer2::getNFKCInstance(status);
    if (form == "NFKD") form_ = icu::Normalizer2::getNFKDInstance(status);
    if (U_FAILURE(status)) throw Error("normalizer " + form + ": ICU has no data for it (" + u_errorName(status) + ")");
  }

  std::string normalize(std::string text) const override {
    UErrorCode status = U_ZERO_ERROR;
    if (form_->isNormalizedUTF8(text, status) && U_SUCCESS(status)) return text;
    std::string normalized;
    icu::StringByteSink<std::string> sink(&normalized, int32_t(text.size()));
    status = U_ZERO_ERROR;
    form_->normalizeUTF8(0, text, sink, nullptr, status);
    if (U_FAILURE(status)) throw Error(std::string("Unicode normalization failed: ") + u_errorName(status));
    return normalized;
  }

 private:
  const icu::Normalizer2* form_ = nullptr;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string text) const override { return text.empty() ? text : prefix_ + text; }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(TextPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string text) const override { return pattern_.replace_all(text, content_); }

 private:
  TextPattern pattern_;
  std::string content_;
};

class NormalizerSequence final : public Normalizer {
 public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> Normalizer::from_json(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = config.at("type").get<std::string>();
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(type);
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(config.at("prepend").get<std::string>());
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(TextPattern::from_json(config.at("pattern"), "normalizer Replace"),
                                               config.at("content").get<std::string>());
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : config.at("normalizers")) steps.push_back(from_json(step));
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  throw Error("tokenizer.json: normalizer type '" + type +
              "' is not supported; moebench reads NFC, NFD, NFKC, NFKD, Prepend, Replace and Sequence");
}

}  // namespace moebench::data
