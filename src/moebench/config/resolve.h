#pragma once
// Resolution of a benchmark setup, as the guide's scripts do it, lowest
// precedence first: configs/common.yaml, the model YAML's literal values, the
// runtime row of the model, the cluster file, environment variables with the
// guide's names, then extra `--flag value` arguments.
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/config/config_files.h"
#include "moebench/config/flag_map.h"

namespace moebench::config {

struct ResolveInputs {
  std::filesystem::path config_dir;     // the repository's configs/
  Variables environment;                // the process environment
  std::vector<std::string> extra_args;  // extra Megatron flags from the command line
};

struct ResolvedConfig {
  std::string model;
  Variables variables;   // the guide's variables after every layer (TP, MBS, OUTPUT_PATH, ...)
  OrderedPairs env_vars; // the model's ENV_VARS, substituted: the training process's environment
  FlagMap flags;         // the training command's flags
};

// Names of the guide's variables that environment variables override.
const std::vector<std::string>& guide_variable_names();

ResolvedConfig resolve(const ResolveInputs& inputs);

// The environment of this process as a map.
Variables process_environment();

// configs/ next to the binary's repository, or $MOEBENCH_CONFIG_DIR.
std::filesystem::path default_config_dir();

}  // namespace moebench::config
