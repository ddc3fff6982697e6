#pragma once
// The Megatron-LM flags moebench understands. Configs, the runtime table and
// the command line all speak these names; anything else is rejected with the
// nearest known name suggested.
#include <span>
#include <string>
#include <string_view>

namespace moebench::config {

enum class FlagKind {
  Bool,     // bare flag: present means true
  Int,
  Float,
  String,
  Strings,  // one or more values (Megatron's nargs='+'), e.g. --data-path 0.3 a 0.7 b
};

struct FlagSpec {
  std::string_view name;  // with the leading "--"
  FlagKind kind;
  std::string_view help;
};

std::span<const FlagSpec> known_flags();

// The spec for `name`, or nullptr.
const FlagSpec* find_flag(std::string_view name);

// The spec for `name`; throws an Error naming the nearest known flag when unknown.
const FlagSpec& require_flag(std::string_view name);

// The known flag closest to `name` by edit distance.
std::string nearest_flag(std::string_view name);

}  // namespace moebench::config
