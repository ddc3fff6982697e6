#include "moebench/config/resolved_config_yaml.h"

#include <yaml-cpp/yaml.h>

#include "moebench/config/flag_registry.h"

namespace moebench::config {

std::string resolved_config_yaml(const ResolvedConfig& config, int world_size) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "MODEL" << YAML::Value << config.model;
  out << YAML::Key << "WORLD_SIZE" << YAML::Value << world_size;
  out << YAML::Key << "VARIABLES" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, value] : config.variables) out << YAML::Key << name << YAML::Value << value;
  out << YAML::EndMap;
  out << YAML::Key << "ENV_VARS" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, value] : config.env_vars) out << YAML::Key << name << YAML::Value << value;
  out << YAML::EndMap;
  out << YAML::Key << "MODEL_ARGS" << YAML::Value << YAML::BeginMap;
  for (const auto& entry : config.flags.entries()) {
    out << YAML::Key << entry.name << YAML::Value;
    const FlagSpec* spec = find_flag(entry.name);
    if (entry.values.empty())
      out << true;
    else if (spec && spec->kind == FlagKind::Strings)
      out << YAML::Flow << entry.values;
    else
      out << entry.values.front();
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace moebench::config
