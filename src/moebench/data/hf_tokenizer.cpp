#include "moebench/data/hf_tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "moebench/core/error.h"

namespace moebench::data {

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("HuggingFaceTokenizer: cannot open " + path.string() + "; check --tokenizer-model");
  std::stringstream contents;
  contents << file.rdbuf();
  try {
    return nlohmann::json::parse(contents.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("HuggingFaceTokenizer: " + path.string() + " is not valid JSON (" + e.what() + ")");
  }
}

// tokenizer_config.json writes a token as a string or as {"content": ...}.
std::optional<std::string> configured_token(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
  return std::nullopt;
}

// The id a post_processor puts before a single text (see the header).
std::optional<int64_t> leading_special_token(const nlohmann::json& post_processor) {
  if (!post_processor.is_object()) return std::nullopt;
  const std::string type = post_processor.value("type", "");
  if (type == "Sequence") {
    // Each step wraps the output of the ones before it, so the last leading token ends up first.
    const nlohmann::json& steps = post_processor.at("processors");
    for (auto step = steps.rbegin(); step != steps.rend(); ++step) {
      if (const auto id = leading_special_token(*step)) return id;
    }
    return std::nullopt;
  }
  if (type != "TemplateProcessing") return std::nullopt;
  const nlohmann::json& single = post_processor.at("single");
  if (single.empty() || !single.front().contains("SpecialToken")) return std::nullopt;
  const std::string name = single.front().at("SpecialToken").at("id");
  const nlohmann::json& ids = post_processor.at("special_tokens").at(name).at("ids");
  if (ids.size() != 1) return std::nullopt;
  return ids.front().get<int64_t>();
}

}  // namespace

HuggingFaceTokenizer::HuggingFaceTokenizer(const std::filesystem::path& path)
    : added_(nlohmann::json::array()) {
  const std::filesystem::path file = std::filesystem::is_directory(path) ? path / "tokenizer.json" : path;
  const nlohmann::json json = read_json(file);
  try {
    const std::string model_type = json.at("model").value("type", "BPE");
    if (model_type != "BPE") {
      throw Error("HuggingFaceTokenizer: " + file.string() + " has a " + model_type +
                  " model; moebench reads BPE models only (those of Llama, Mixtral, Qwen and DeepSeek)");
    }
    added_ = AddedVocabulary(json.at("added_tokens"));
    normalizer_ = Normalizer::from_json(json.value("normalizer", nlohmann::json()));
    pre_tokenizer_ = PreTokenizer::from_json(json.value("pre_tokenizer", nlohmann::json()));
    model_ = std::make_unique<BpeModel>(json.at("model"));
    decoder_ = TokenDecoder::from_json(json.value("decoder", nlohmann::json()));
    bos_ = leading_special_token(json.value("post_processor", nlohmann::json()));
  } catch (const nlohmann::json::exception& e) {
    throw Error("HuggingFaceTokenizer: " + file.string() + " lacks a field moebench needs (" + e.what() + ")");
  }
  vocab_size_ = model_->vocab_size();
  for (const AddedToken& token : added_.tokens()) vocab_size_ = std::max(vocab_size_, token.id + 1);

  const std::filesystem::path config_file = file.parent_path() / "tokenizer_config.json";
  std::optional<std::string> eos;
  if (std::filesystem::exists(config_file)) eos = configured_token(read_json(config_file), "eos_token");
  if (eos) {
    eod_ = token_to_id(*eos);
    if (!eod_) throw Error("HuggingFaceTokenizer: eos_token '" + *eos + "' of " + config_file.string() +
                           " is not in " + file.string() + "; fix one of the two files");
  } else {
    for (const char* name : {"<|endoftext|>", "</s>", "<\uFF5Cend\u2581of\u2581sentence\uFF5C>", "<|end_of_text|>"}) {
      if ((eod_ = token_to_id(name))) break;
    }
  }
}

std::optional<int64_t> HuggingFaceTokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* added = added_.find(token)) return added->id;
  return model_->token_to_id(token);
}

std::vector<int64_t> HuggingFaceTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  for (const TextSection& raw : added_.split(text, /*normalized=*/false)) {
    if (raw.id) {
      ids.push_back(*raw.id);
      continue;
    }
    const std::string normalized = normalizer_ ? normalizer_->normalize(std::string(raw.text)) : std::string(raw.text);
    if (!added_.has_normalized_tokens()) {
      encode_section(normalized, raw.offset == 0, ids);
      continue;
    }
    for (const TextSection& section : added_.split(normalized, /*normalized=*/true)) {
      if (section.id) {
        ids.push_back(*section.id);
      } else {
        encode_section(section.text, raw.offset == 0 && section.offset == 0, ids);
      }
    }
  }
  return ids;
}

void HuggingFaceTokenizer::encode_section(std::string_view text, bool starts_input, std::vector<int64_t>& ids) const {
  if (text.empty()) return;
  if (!pre_tokenizer_) {
    model_->encode_word(text, ids);
    return;
  }
  for (const std::string& word : pre_tokenizer_->pre_tokenize({std::string(text)}, starts_input)) {
    if (!word.empty()) model_->encode_word(word, ids);
  }
}

std::string HuggingFaceTokenizer::decode(std::span<const int64_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    if (const AddedToken* added = added_.find(id)) {
      tokens.push_back(added->content);
    } else if (const std::string* token = model_->id_to_token(id)) {
      tokens.push_back(*token);
    } else {
      throw Error("HuggingFaceTokenizer: id " + std::to_string(id) + " is not in the vocabulary (ids run to " +
                  std::to_string(vocab_size_ - 1) + "); the ids come from another tokenizer");
    }
  }
  if (!decoder_) {
    std::string text;
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    return text;
  }
  std::string text;
  for (const std::string& piece : decoder_->decode_chain(std::move(tokens))) text += piece;
  return text;
}

}  // namespace moebench::data
