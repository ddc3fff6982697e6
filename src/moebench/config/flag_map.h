#pragma once
// An ordered set of Megatron flags with their values: what a model YAML, the
// runtime knobs and the command line resolve to, and what `moebench run`
// parses into typed configs. Order is kept so printed commands read like the
// files they came from.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moebench::config {

class FlagMap {
 public:
  struct Entry {
    std::string name;                 // "--num-layers"
    std::vector<std::string> values;  // empty for a bare (bool) flag
  };

  // Parses "--flag value ... --bare --list a b c" as Megatron's argparse would,
  // using each known flag's kind to decide how many values it takes.
  static FlagMap parse_arguments(const std::vector<std::string>& tokens);

  // Sets a flag from a YAML-style scalar: for bool flags "true" means present
  // and "false" or "" absent; for other flags "" means absent. Lists split on
  // whitespace. Unknown flags throw with the nearest known name.
  void set_from_text(std::string_view name, std::string_view text);
  void set(std::string_view name, std::vector<std::string> values);
  void set_bool(std::string_view name, bool present);
  void erase(std::string_view name);
  // Overlays `other`: its flags replace ours in place or are appended; a flag
  // given one empty value (`--save ""`) removes ours.
  void merge(const FlagMap& other);

  bool has(std::string_view name) const;
  const std::vector<Entry>& entries() const { return entries_; }

  // Typed reads. A missing flag gives the fallback; a malformed value throws
  // an Error naming the flag and the value.
  bool get_bool(std::string_view name) const { return has(name); }
  long long get_int(std::string_view name, long long fallback) const;
  std::optional<long long> find_int(std::string_view name) const;
  double get_float(std::string_view name, double fallback) const;
  std::string get_string(std::string_view name, std::string_view fallback) const;
  std::vector<std::string> get_strings(std::string_view name) const;

  // "--a 1 --b --c x y" tokens, in order.
  std::vector<std::string> to_arguments() const;

 private:
  const Entry* find(std::string_view name) const;
  const std::string& single_value(std::string_view name) const;
  std::vector<Entry> entries_;
};

}  // namespace moebench::config
