#include "moebench/config/flag_map.h"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "moebench/config/flag_registry.h"
#include "moebench/core/error.h"

namespace moebench::config {
namespace {

bool is_flag_token(std::string_view token) { return token.size() > 2 && token.starts_with("--"); }

std::vector<std::string> split_whitespace(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

}  // namespace

FlagMap FlagMap::parse_arguments(const std::vector<std::string>& tokens) {
  FlagMap flags;
  for (size_t i = 0; i < tokens.size();) {
    const std::string& token = tokens[i];
    if (!is_flag_token(token))
      throw Error("unexpected argument '" + token + "': expected a flag such as --num-layers");
    const FlagSpec& spec = require_flag(token);
    ++i;
    std::vector<std::string> values;
    if (spec.kind == FlagKind::Strings) {
      while (i < tokens.size() && !is_flag_token(tokens[i])) values.push_back(tokens[i++]);
      if (values.empty()) throw Error("flag " + token + " expects one or more values");
    } else if (spec.kind != FlagKind::Bool) {
      if (i == tokens.size() || is_flag_token(tokens[i]))
        throw Error("flag " + token + " expects a value");
      values.push_back(tokens[i++]);
    }
    flags.set(token, std::move(values));
  }
  return flags;
}

void FlagMap::set_from_text(std::string_view name, std::string_view text) {
  const FlagSpec& spec = require_flag(name);
  if (spec.kind == FlagKind::Bool) {
    if (text == "true" || text == "1")
      set_bool(name, true);
    else if (text == "false" || text == "0" || text.empty())
      set_bool(name, false);
    else
      throw Error("flag " + std::string(name) + " is a switch: give true or false, not '" +
                  std::string(text) + "'");
    return;
  }
  if (text.empty()) {
    erase(name);
    return;
  }
  if (spec.kind == FlagKind::Strings)
    set(name, split_whitespace(text));
  else
    set(name, {std::string(text)});
}

void FlagMap::set(std::string_view name, std::vector<std::string> values) {
  require_flag(name);
  for (auto& entry : entries_)
    if (entry.name == name) {
      entry.values = std::move(values);
      return;
    }
  entries_.push_back({std::string(name), std::move(values)});
}

void FlagMap::set_bool(std::string_view name, bool present) {
  if (present)
    set(name, {});
  else
    erase(name);
}

void FlagMap::erase(std::string_view name) {
  std::erase_if(entries_, [&](const Entry& e) { return e.name == name; });
}

void FlagMap::merge(const FlagMap& other) {
  for (const auto& entry : other.entries_) {
    // `--save ""` on the command line unsets what a config file set, as an
    // empty value makes Megatron skip the feature.
    if (entry.values.size() == 1 && entry.values.front().empty())
      erase(entry.name);
    else
      set(entry.name, entry.values);
  }
}

bool FlagMap::has(std::string_view name) const { return find(name) != nullptr; }

const FlagMap::Entry* FlagMap::find(std::string_view name) const {
  for (const auto& entry : entries_)
    if (entry.name == name) return &entry;
  return nullptr;
}

const std::string& FlagMap::single_value(std::string_view name) const {
  const Entry* entry = find(name);
  if (entry->values.size() != 1)
    throw Error("flag " + std::string(name) + " expects exactly one value, got " +
                std::to_string(entry->values.size()));
  return entry->values.front();
}

std::optional<long long> FlagMap::find_int(std::string_view name) const {
  if (!has(name)) return std::nullopt;
  const std::string& text = single_value(name);
  long long value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size())
    throw Error("flag " + std::string(name) + " expects an integer, got '" + text + "'");
  return value;
}

long long FlagMap::get_int(std::string_view name, long long fallback) const {
  return find_int(name).value_or(fallback);
}

double FlagMap::get_float(std::string_view name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string& text = single_value(name);
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw Error("flag " + std::string(name) + " expects a number, got '" + text + "'");
}

std::string FlagMap::get_string(std::string_view name, std::string_view fallback) const {
  if (!has(name)) return std::string(fallback);
  return single_value(name);
}

std::vector<std::string> FlagMap::get_strings(std::string_view name) const {
  const Entry* entry = find(name);
  return entry ? entry->values : std::vector<std::string>{};
}

std::vector<std::string> FlagMap::to_arguments() const {
  std::vector<std::string> tokens;
  for (const auto& entry : entries_) {
    tokens.push_back(entry.name);
    tokens.insert(tokens.end(), entry.values.begin(), entry.values.end());
  }
  return tokens;
}

}  // namespace moebench::config
