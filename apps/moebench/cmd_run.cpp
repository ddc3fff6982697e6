// `moebench run`: train, as Megatron's pretrain_gpt.py does: resolve the
// flags, check them, write the resolved config into the output directory,
// build the model, train on the data and log every iteration. Started by
// mpirun or srun on several ranks, it trains over all of them with the
// mapping's TP (with SP), PP, EP and data parallelism on CPU ranks, and with
// --device cuda data-parallel over one GPU per rank; rank 0 alone prints and writes the
// config, metrics and TensorBoard events (with PP the trainer gives it the
// last stage's loss).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "commands.h"
#include "moebench/ckpt/checkpoint_format.h"
#include "moebench/ckpt/hf_import.h"
#include "moebench/config/resolved_config_yaml.h"
#include "moebench/config/validation.h"
#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"
#ifdef MOEBENCH_WITH_CUDA
#include <cuda_runtime_api.h>

#include "moebench/core/cuda_allocator.h"
#endif
#include "moebench/data/dataset_builder.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/data/tokenizer.h"
#include "moebench/dist/bootstrap.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"
#include "moebench/obs/iteration_log.h"
#include "moebench/train/flops.h"
#include "moebench/train/gpu_rank_placement.h"
#include "moebench/train/placement_communicator.h"
#include "moebench/train/trainer.h"

namespace moebench::cli {
namespace fs = std::filesystem;
namespace {

// With a model (--model or $MODEL) the setup resolves as `plan` resolves it;
// without one the command line's flags are the whole configuration.
config::ResolvedConfig resolve_run(const std::vector<std::string>& extras, const std::string& model_option) {
  const char* model_variable = std::getenv("MODEL");
  config::ResolvedConfig resolved;
  if (!model_option.empty() || (model_variable && *model_variable)) {
    resolved = resolve_from_environment(extras, model_option);
  } else {
    resolved.flags = config::FlagMap::parse_arguments(extras);
    if (!resolved.flags.has("--data-path")) resolved.flags.set_bool("--mock-data", true);
  }
  return resolved;
}

// What the trainer reads: mock data with --mock-data (or no --data-path),
// else the corpora of --data-path, split and sized as Megatron does.
struct RunData {
  std::shared_ptr<const data::MicrobatchSource> train;
  std::shared_ptr<const data::MicrobatchSource> validation;  // null: nothing to evaluate on
  std::string description;
};

RunData mock_run_data(const config::ModelConfig& model, uint64_t seed) {
  return {std::make_shared<const data::MockDataset>(model.seq_length, model.vocab_size, seed, data::Split::Train),
          std::make_shared<const data::MockDataset>(model.seq_length, model.vocab_size, seed, data::Split::Validation),
          "mock data"};
}

RunData corpus_run_data(const config::FlagMap& flags, const config::ModelConfig& model,
                        const config::ParallelConfig& parallel, const train::TrainConfig& t) {
  if (!flags.has("--tokenizer-type"))
    throw Error("--data-path needs the tokenizer the corpus was preprocessed with: give --tokenizer-type (and "
                "--tokenizer-model or --vocab-size)");
  const auto tokenizer = data::make_tokenizer({flags.get_string("--tokenizer-type", ""),
                                               flags.get_string("--tokenizer-model", ""),
                                               flags.get_int("--vocab-size", 0)});
  if (tokenizer->vocab_size() > model.vocab_size)
    throw Error("tokenizer " + flags.get_string("--tokenizer-type", "") + " has " +
                std::to_string(tokenizer->vocab_size()) + " ids but the model's vocabulary holds " +
                std::to_string(model.vocab_size) + "; set --vocab-size to cover the tokenizer");
  data::TrainingDataConfig config;
  config.data_path = flags.get_strings("--data-path");
  config.split = flags.get_string("--split", data::kDefaultSplit);
  config.dataset.seq_length = model.seq_length;
  config.dataset.seed = uint64_t(t.seed);
  config.dataset.cache_directory = flags.get_string("--data-cache-path", "");
  // Megatron's --eod-mask-loss: no loss on predicting from an end-of-document token.
  if (flags.get_bool("--eod-mask-loss")) {
    if (!tokenizer->eod())
      throw Error("--eod-mask-loss needs a tokenizer with an end-of-document token; " +
                  flags.get_string("--tokenizer-type", "") + " has none");
    config.dataset.eod_mask_loss = true;
    config.dataset.eod_token = *tokenizer->eod();
  }
  config.samples = data::megatron_sample_counts(t.train_iters, t.train_samples, t.eval_interval, t.eval_iters,
                                                parallel.global_batch);
  const data::TrainingDatasets datasets = data::build_training_datasets(config);
  std::string description = "data";
  for (const std::string& word : config.data_path) description += " " + word;
  description += " (split " + config.split + ": " + std::to_string(config.samples.train) + " train samples, ";
  description += datasets.validation ? std::to_string(config.samples.valid) + " validation samples)"
                                     : "no validation split)";
  return {datasets.train, datasets.validation, description};
}

// What the CPU engine cannot do yet, each with the way out.
void reject_unsupported(const config::FlagMap& flags, const config::ParallelConfig& p) {
  if (flags.has("--fp8-format") || flags.has("--fp8-recipe"))
    throw Error("fp8 training (PR=fp8 or mxfp8: --fp8-format " + flags.get_string("--fp8-format", "?") +
                ", --fp8-recipe " + flags.get_string("--fp8-recipe", "?") +
                ") needs the CUDA engine on Hopper GPUs; the CPU engine trains in float32: use PR=bf16");
  if (p.context > 1)
    throw Error("CP=" + std::to_string(p.context) + ": context parallelism is not available in the CPU engine; set CP=1");
}

// --device cpu|cuda; without it the GPU when this build has CUDA, one is
// present and the run has one rank (parallel runs ask for the GPU by name).
// On the GPU each rank trains on the GPU of its local rank, data-parallel
// only: any other mapping fails here, before any group is built.
model::ModelPlacement choose_placement(const config::FlagMap& flags, const config::ParallelConfig& parallel,
                                       const dist::ProcessIdentity& identity) {
  const std::string device = flags.get_string("--device", "");
  if (!device.empty() && device != "cpu" && device != "cuda")
    throw Error("--device " + device + ": use cpu or cuda");
  if (device == "cpu") return model::ModelPlacement::cpu();
  if (device == "cuda") train::require_gpu_data_parallel_mapping(parallel);
#ifdef MOEBENCH_WITH_CUDA
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
  if (gpus > 0 && (device == "cuda" || identity.world_size == 1)) {
    const int gpu = train::gpu_of_local_rank(identity.local_rank, gpus);
    cudaSetDevice(gpu);
    enable_cuda_tensors();
    return model::ModelPlacement::cuda(gpu);
  }
  if (device == "cuda") throw Error("--device cuda: no CUDA device is visible to this process");
#else
  (void)identity;
  if (device == "cuda")
    throw Error("--device cuda: this moebench was built without CUDA; rebuild where nvcc is found or use --device cpu");
#endif
  return model::ModelPlacement::cpu();
}

// A Hugging Face directory given to --load is read here, as weights only;
// the trainer itself resumes from native checkpoints.
void load_hf_checkpoint(model::GPTModel& model, train::TrainConfig& t) {
  if (t.load.empty() || ckpt::detect_checkpoint_format(t.load) != ckpt::CheckpointFormat::kHuggingFace) return;
  ckpt::load_hf_weights(model, SafetensorsCheckpoint(t.load));
  t.load.clear();
}

// --ckpt-convert-save: what --load gave, saved again in our format (the
// request for Megatron's torch_dist is the same), then the run ends.
int save_converted_checkpoint(train::Trainer& trainer, const config::FlagMap& flags, bool reporting_rank) {
  const std::string format = flags.get_string("--ckpt-convert-format", "native");
  if (format != "native" && format != "torch_dist")
    throw Error("--ckpt-convert-format " + format + " is not supported; use native (torch_dist means the same)");
  if (!flags.has("--load")) throw Error("--ckpt-convert-save needs the checkpoint to convert: give --load");
  const fs::path target = flags.get_string("--ckpt-convert-save", "");
  trainer.save_checkpoint(target);
  if (reporting_rank)
    std::printf("converted %s (iteration %lld) into %s\n", flags.get_string("--load", "").c_str(),
                (long long)trainer.completed_iterations(), target.c_str());
  return 0;
}

int train_on_this_rank(const dist::World& world, const std::vector<std::string>& extras,
                       const std::string& model_option) {
  const int world_size = world.communicator().size();
  // Megatron's print_rank_0: one rank speaks for the run.
  const bool reporting_rank = world.communicator().rank() == 0;

  config::ResolvedConfig resolved = resolve_run(extras, model_option);
  const config::FlagMap& flags = resolved.flags;
  const config::ParallelConfig parallel = config::parallel_config_from_flags(flags, world_size);
  train::TrainConfig train_config = train::train_config_from_flags(flags, parallel.global_batch);
  reject_unsupported(flags, parallel);
  const config::ModelConfig model_config = config::model_config_from_flags(flags, parallel.tensor);
  config::validate(model_config, parallel);
  const uint64_t seed = uint64_t(train_config.seed);
  const RunData run_data = train_config.mock_data || !train_config.has_data_path
                               ? mock_run_data(model_config, seed)
                               : corpus_run_data(flags, model_config, parallel, train_config);
  // Megatron skips evaluation when the split leaves no validation data.
  if (!run_data.validation) train_config.eval_iters = 0;

  const fs::path output_dir = train_config.output_dir.empty() ? fs::path("output") : train_config.output_dir;
  const fs::path tensorboard_dir =
      train_config.tensorboard_dir.empty() ? output_dir / "tensorboard" : train_config.tensorboard_dir;
  const model::ModelPlacement placement_of_run = choose_placement(flags, parallel, world.identity());
  if (reporting_rank) {
    write_file_atomically(output_dir / "config.yaml", config::resolved_config_yaml(resolved, world_size));
    std::printf("moebench run: %s, %d layers, hidden %d, %d experts; MBS %d, GBS %d (%d microbatches), "
                "%lld iterations\n",
                resolved.model.empty() ? "model from flags" : resolved.model.c_str(), model_config.num_layers,
                model_config.hidden_size, model_config.moe.num_experts, parallel.micro_batch, parallel.global_batch,
                parallel.num_microbatches(), train_config.train_iters);
    if (flags.get_bool("--moe-extended-ep"))
      std::printf("note: --moe-extended-ep changes nothing: the expert-parallel group always folds over the tp and "
                  "dp ranks (Megatron's expert-parallel folding), so EP may exceed DP\n");
    // The GPU engine trains in Megatron's bf16 mixed precision; the CPU engine is the float32 reference.
    std::printf("engine: %s, %d rank%s (DP=%d, PP=%d, VPP=%d, EP=%d, TP=%d%s%s); %s; output in %s\n",
                placement_of_run.device.is_cuda() ? "GPU (one per rank, cuda:<local rank>), bf16 mixed precision"
                                                  : "CPU, float32",
                world_size,
                world_size == 1 ? "" : "s", parallel.data_parallel(), parallel.pipeline, parallel.virtual_stages,
                parallel.expert, parallel.tensor, parallel.sequence_parallel ? " with sequence parallelism" : "",
                parallel.distributed_optimizer ? ", distributed optimizer" : "", run_data.description.c_str(),
                output_dir.c_str());
    std::fflush(stdout);
  }
  // The groups move tensors where the model lives: MPI on the CPU; on the GPU
  // NCCL for device tensors and MPI for the host scalars (losses, norms).
  const std::unique_ptr<dist::Communicator> placement_world =
      train::communicator_for_placement(world.communicator(), placement_of_run.device);
  const dist::ParallelState parallel_state(*placement_world,
                                           {.world_size = world_size,
                                            .tensor = parallel.tensor,
                                            .context = parallel.context,
                                            .expert = parallel.expert,
                                            .expert_tensor = parallel.expert_tensor,
                                            .pipeline = parallel.pipeline});

  const model::ModelPlacement& placement = placement_of_run;
  // This rank's pipeline stage: its layers only (all of them with PP=1).
  const int stage = parallel_state.membership(GroupKind::kPipeline).rank_in_group;
  const auto setup_start = std::chrono::steady_clock::now();
  const auto report_setup = [&](const char* what) {
    if (!reporting_rank) return;
    std::printf("%s after %.1f s\n", what,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count());
    std::fflush(stdout);
  };
  model::GPTModel gpt(model_config, seed, model::ModelConventions{}, placement, parallel_state,
                      model::PipelineStageLayout::of_stage(parallel, model_config.num_layers, stage));
  report_setup("model built");
  load_hf_checkpoint(gpt, train_config);
  train::TrainableModelRef<model::GPTModel> trainable(gpt);
  std::optional<IterationLog> log;
  train::TrainingObserver observer;
  if (reporting_rank) {
    log.emplace(IterationLogOptions{.log_interval = train_config.log_interval,
                                    .metrics_file = output_dir / "metrics.jsonl",
                                    .tensorboard_dir = tensorboard_dir,
                                    .progress_bar = ::isatty(STDERR_FILENO) == 1},
                std::cout, std::cerr);
    observer = {[&log](const IterationRecord& r) { log->log_iteration(r); },
                [&log](const ValidationRecord& r) { log->log_validation(r); }};
  }
  const train::TrainingSetup setup{train_config, parallel, model_config.seq_length,
                                   train::flops_per_iteration(model_config, parallel.global_batch),
                                   flags.to_arguments(), model_config.hidden_size};
  train::Trainer trainer(trainable, setup, parallel_state, *run_data.train,
                         run_data.validation ? *run_data.validation : *run_data.train, std::move(observer));
  report_setup("optimizer and data ready");
  if (flags.has("--ckpt-convert-save")) return save_converted_checkpoint(trainer, flags, reporting_rank);
  const train::TrainingSummary summary = trainer.train();
  if (!reporting_rank) return 0;

  if (summary.stopped_by_time_limit)
    std::printf("exiting program after %g minutes (--exit-duration-in-mins) at iteration %lld\n",
                train_config.exit_duration_in_mins, (long long)summary.iterations);
  std::printf("training done: %lld iterations, %lld samples, %lld skipped, %lld with NaN loss; metrics in %s\n",
              (long long)summary.iterations, (long long)summary.consumed_samples,
              (long long)summary.skipped_iterations, (long long)summary.nan_iterations,
              (output_dir / "metrics.jsonl").c_str());
  return 0;
}

// With several ranks an error may stop some of them only, while the others
// wait in a collective: report it and end the whole job, as torchrun does.
int run_training(const std::vector<std::string>& extras, const std::string& model_option) {
  const dist::World world(dist::identity_from_environment());
  if (world.communicator().size() == 1) return train_on_this_rank(world, extras, model_option);
  try {
    return train_on_this_rank(world, extras, model_option);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moebench: error on rank %d: %s\n", world.communicator().rank(), e.what());
    std::fflush(stderr);
    world.abort(2);
  }
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
