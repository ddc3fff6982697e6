#pragma once
// Variable substitution with envsubst's rules: $NAME and ${NAME} are replaced
// by the variable's value, an unset variable becomes empty, and nothing else
// (no defaults, no commands) is interpreted.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace moebench::config {

using VariableLookup = std::function<std::optional<std::string>(std::string_view name)>;

std::string envsubst(std::string_view text, const VariableLookup& lookup);

}  // namespace moebench::config
