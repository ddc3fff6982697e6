#include "commands.h"

#include "moebench/config/validation.h"
#include "moebench/core/error.h"

namespace moebench::cli {

void SetupOptions::add_to(CLI::App& command) {
  command.add_option("--model", model, "model to use instead of $MODEL (a name from configs/models)");
  // Everything CLI11 does not know is a Megatron flag, appended as the guide's scripts append "$@".
  command.allow_extras();
}

config::ResolvedConfig resolve_from_environment(const std::vector<std::string>& extra_args,
                                                const std::string& model_override) {
  config::ResolveInputs inputs{config::default_config_dir(), config::process_environment(), extra_args};
  if (!model_override.empty()) inputs.environment["MODEL"] = model_override;
  return config::resolve(inputs);
}

namespace {

int positive_variable(const config::ResolvedConfig& resolved, const std::string& name) {
  auto it = resolved.variables.find(name);
  const std::string text = it == resolved.variables.end() ? "" : it->second;
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (const std::exception&) {
  }
  throw Error(name + "='" + text + "' must be a positive integer");
}

}  // namespace

Setup validated_setup(config::ResolvedConfig resolved) {
  const int world = positive_variable(resolved, "NNODES") * positive_variable(resolved, "GPUS_PER_NODE");
  config::ParallelConfig parallel = config::parallel_config_from_flags(resolved.flags, world);
  config::ModelConfig model = config::model_config_from_flags(resolved.flags, parallel.tensor);
  config::validate(model, parallel);
  const train::OptimizerPrecision precision = train::optimizer_precision_from_flags(resolved.flags);
  return {std::move(resolved), std::move(model), parallel, precision};
}

}  // namespace moebench::cli
