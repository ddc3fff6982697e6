// `moebench run`: train on this machine, as Megatron's pretrain_gpt.py does:
// resolve the flags, check them, write the resolved config into the output
// directory, build the model, train on the data and log every iteration.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>

#include "commands.h"
#include "moebench/config/resolved_config_yaml.h"
#include "moebench/config/validation.h"
#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/model/gpt_model.h"
#include "moebench/obs/iteration_log.h"
#include "moebench/train/flops.h"
#include "moebench/train/trainer.h"

namespace moebench::cli {
namespace fs = std::filesystem;
namespace {

constexpr const char* kParallelismLater = "multi-rank runs arrive with the parallelism issue";

// Ranks started by mpirun or srun; 1 when run directly.
int launcher_world_size() {
  int world = 1;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"})
    if (const char* value = std::getenv(name)) world = std::max(world, std::atoi(value));
  return world;
}

// With a model (--model or $MODEL) the setup resolves as `plan` resolves it;
// without one the command line's flags are the whole configuration.
config::ResolvedConfig resolve_run(const std::vector<std::string>& extras, const std::string& model_option) {
  const char* model_variable = std::getenv("MODEL");
  if (!model_option.empty() || (model_variable && *model_variable))
    return resolve_from_environment(extras, model_option);
  config::ResolvedConfig resolved;
  resolved.flags = config::FlagMap::parse_arguments(extras);
  if (!resolved.flags.has("--data-path")) resolved.flags.set_bool("--mock-data", true);
  return resolved;
}

// What the CPU engine with one rank cannot do, each with the way out.
void reject_unsupported(const config::FlagMap& flags, const config::ParallelConfig& p,
                        const train::TrainConfig& t) {
  if (flags.has("--fp8-format") || flags.has("--fp8-recipe"))
    throw Error("fp8 training (PR=fp8 or mxfp8: --fp8-format " + flags.get_string("--fp8-format", "?") +
                ", --fp8-recipe " + flags.get_string("--fp8-recipe", "?") +
                ") needs the CUDA engine on Hopper GPUs; the CPU engine trains in float32: use PR=bf16");
  if (p.context > 1)
    throw Error("CP=" + std::to_string(p.context) + ": context parallelism is not available in the CPU engine; set CP=1");
  for (auto [name, size] : {std::pair{"TP", p.tensor}, {"PP", p.pipeline}, {"EP", p.expert},
                            {"expert-TP", p.expert_tensor}, {"VPP", p.virtual_stages}})
    if (size > 1)
      throw Error(std::string(name) + "=" + std::to_string(size) + " needs several ranks, but this run has one (" +
                  kParallelismLater + "); set TP, PP, EP, VPP and expert-TP to 1");
  if (t.has_data_path && !t.mock_data)
    throw Error("--data-path " + flags.get_string("--data-path", "") +
                ": reading indexed datasets arrives with the data issue; run with --mock-data for now");
  if (!flags.get_string("--load", "").empty())
    throw Error("--load " + flags.get_string("--load", "") +
                ": loading checkpoints arrives with the checkpoint issue; drop --load (or run with PRETRAIN=1)");
}

int run_training(const std::vector<std::string>& extras, const std::string& model_option) {
  const int launched = launcher_world_size();
  if (launched > 1)
    throw Error("launched with " + std::to_string(launched) + " ranks (OMPI_COMM_WORLD_SIZE/SLURM_NTASKS), but " +
                kParallelismLater + "; run one process");
  const int world_size = 1;

  config::ResolvedConfig resolved = resolve_run(extras, model_option);
  const config::FlagMap& flags = resolved.flags;
  const config::ParallelConfig parallel = config::parallel_config_from_flags(flags, world_size);
  const train::TrainConfig train_config = train::train_config_from_flags(flags, parallel.global_batch);
  reject_unsupported(flags, parallel, train_config);
  const config::ModelConfig model_config = config::model_config_from_flags(flags, parallel.tensor);
  config::validate(model_config, parallel);

  const fs::path output_dir = train_config.output_dir.empty() ? fs::path("output") : train_config.output_dir;
  const fs::path tensorboard_dir =
      train_config.tensorboard_dir.empty() ? output_dir / "tensorboard" : train_config.tensorboard_dir;
  write_file_atomically(output_dir / "config.yaml", config::resolved_config_yaml(resolved, world_size));

  std::printf("moebench run: %s, %d layers, hidden %d, %d experts; MBS %d, GBS %d (%d microbatches), %lld iterations\n",
              resolved.model.empty() ? "model from flags" : resolved.model.c_str(), model_config.num_layers,
              model_config.hidden_size, model_config.moe.num_experts, parallel.micro_batch, parallel.global_batch,
              parallel.num_microbatches(), train_config.train_iters);
  // --bf16 selects the GPU engine's compute type; the CPU engine is the float32 reference.
  std::printf("engine: CPU, float32, 1 rank; mock data; output in %s\n", output_dir.c_str());
  std::fflush(stdout);

  const uint64_t seed = uint64_t(train_config.seed);
  model::GPTModel gpt(model_config, seed);
  train::TrainableModelRef<model::GPTModel> trainable(gpt);
  const data::MockDataset train_data(model_config.seq_length, model_config.vocab_size, seed, data::Split::Train);
  const data::MockDataset validation_data(model_config.seq_length, model_config.vocab_size, seed,
                                          data::Split::Validation);
  IterationLog log({.log_interval = train_config.log_interval,
                    .metrics_file = output_dir / "metrics.jsonl",
                    .tensorboard_dir = tensorboard_dir,
                    .progress_bar = ::isatty(STDERR_FILENO) == 1},
                   std::cout, std::cerr);
  const train::TrainingSetup setup{train_config, parallel, model_config.seq_length,
                                   train::flops_per_iteration(model_config, parallel.global_batch)};
  train::Trainer trainer(trainable, setup, train_data, validation_data,
                         {[&log](const IterationRecord& r) { log.log_iteration(r); },
                          [&log](const ValidationRecord& r) { log.log_validation(r); }});
  const train::TrainingSummary summary = trainer.train();

  if (summary.stopped_by_time_limit)
    std::printf("exiting program after %g minutes (--exit-duration-in-mins) at iteration %lld\n",
                train_config.exit_duration_in_mins, (long long)summary.iterations);
  std::printf("training done: %lld iterations, %lld samples, %lld skipped, %lld with NaN loss; metrics in %s\n",
              (long long)summary.iterations, (long long)summary.consumed_samples,
              (long long)summary.skipped_iterations, (long long)summary.nan_iterations,
              (output_dir / "metrics.jsonl").c_str());
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app, Action& action) {
  auto options = std::make_shared<SetupOptions>();
  auto* command = app.add_subcommand(
      "run", "train on this machine with Megatron flags (MODEL/--model resolves a configured setup first); "
             "writes config.yaml, metrics.jsonl and TensorBoard events into --output-dir");
  options->add_to(*command);
  command->callback([options, command, &action] {
    action = [options, extras = command->remaining()] { return run_training(extras, options->model); };
  });
}

}  // namespace moebench::cli
