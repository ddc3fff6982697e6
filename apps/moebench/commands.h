#pragma once
// Each subcommand registers itself on the CLI11 app and returns the action
// to run once parsing succeeded.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/train/optimizer_precision.h"

namespace moebench::cli {

using Action = std::function<int()>;

void add_plan_command(CLI::App& app, Action& action);
void add_launch_command(CLI::App& app, Action& action);
void add_flags_command(CLI::App& app, Action& action);
void add_run_command(CLI::App& app, Action& action);
void add_logits_command(CLI::App& app, Action& action);
void add_convert_command(CLI::App& app, Action& action);
void add_preprocess_command(CLI::App& app, Action& action);

// Resolves MODEL, the guide's variables and `extra_args` as the scripts do.
config::ResolvedConfig resolve_from_environment(const std::vector<std::string>& extra_args,
                                                const std::string& model_override);

// A resolved setup, typed and validated for NNODES x GPUS_PER_NODE ranks.
struct Setup {
  config::ResolvedConfig resolved;
  config::ModelConfig model;
  config::ParallelConfig parallel;
  train::OptimizerPrecision optimizer_precision;  // the dtypes of Adam's moments
};
Setup validated_setup(config::ResolvedConfig resolved);

// Options shared by commands that resolve a setup: --model and the extra Megatron flags.
struct SetupOptions {
  std::string model;
  void add_to(CLI::App& command);
};

}  // namespace moebench::cli
