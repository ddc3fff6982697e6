// `moebench logits`: run a checkpoint on given token ids and write the logits
// (and the loss when labels are given), so users can check a converted
// checkpoint against their own reference. Under mpirun with
// --tensor-model-parallel-size / --pipeline-model-parallel-size /
// --expert-model-parallel-size each rank loads only its tp slices, pipeline
// stage and experts; the last stage writes the logits gathered over tp.
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "commands.h"
#include "moebench/ckpt/checkpoint_format.h"
#include "moebench/ckpt/hf_import.h"
#include "moebench/ckpt/native_model.h"
#include "moebench/ckpt/safetensors.h"
#include "moebench/core/error.h"
#include "moebench/dist/bootstrap.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/train/pipeline_logits.h"

namespace moebench::cli {
namespace fs = std::filesystem;
namespace {

struct LogitsOptions {
  std::string load, input, output;
  // TP (with SP), PP, EP and uneven first/last stages; the rest of the ranks are replicas.
  config::ParallelConfig mapping;
};

Tensor int64_tensor(const SafetensorsTensor& t) {
  if (t.shape.size() != 2) throw Error("'" + t.name + "' must be [batch, sequence], got " + std::to_string(t.shape.size()) + " dims");
  return Tensor::from_vector<int64_t>(to_int64_vector(t), t.shape);
}

SafetensorsTensor float_entry(const std::string& name, const Tensor& t) {
  const auto* bytes = reinterpret_cast<const std::byte*>(t.data<float>());
  return {name, "F32", t.shape(), {bytes, t.nbytes()}};
}

// This rank's part of the model in a Hugging Face directory or a native
// checkpoint, whichever --load names.
model::GPTModel load_model(const fs::path& dir, const config::ParallelConfig& mapping,
                           const dist::ParallelState& state) {
  if (ckpt::detect_checkpoint_format(dir) == ckpt::CheckpointFormat::kNative)
    return ckpt::load_native_model(ckpt::NativeCheckpoint(dir), state, mapping);
  if (mapping.tensor > 1)
    throw Error("moebench logits: --tensor-model-parallel-size " + std::to_string(mapping.tensor) +
                " reads native checkpoints only, and " + dir.string() +
                " is a Hugging Face directory; convert it first (moebench convert hf-to-native --load " + dir.string() +
                " --save DIR) and pass --load DIR");
  const ckpt::HfModelSpec spec = ckpt::read_hf_config(dir / "config.json");
  const int stage = state.membership(GroupKind::kPipeline).rank_in_group;
  model::GPTModel model(ckpt::model_config_for_mapping(spec.config, mapping), 0, spec.conventions,
                        model::ModelPlacement::cpu(), state,
                        model::PipelineStageLayout::of_stage(mapping, spec.config.num_layers, stage));
  ckpt::load_hf_weights(model, SafetensorsCheckpoint(dir));
  return model;
}

int write_logits(const dist::World& world, LogitsOptions options) {
  const int world_size = world.communicator().size();
  options.mapping.world_size = world_size;
  const int model_ranks = options.mapping.tensor * options.mapping.pipeline;
  if (world_size % model_ranks != 0)
    throw Error("moebench logits: --tensor-model-parallel-size " + std::to_string(options.mapping.tensor) +
                " x --pipeline-model-parallel-size " + std::to_string(options.mapping.pipeline) + " = " +
                std::to_string(model_ranks) + " does not divide the " + std::to_string(world_size) +
                " ranks; start a multiple of TP x PP ranks");
  const dist::ParallelState state(world.communicator(), {.world_size = world_size,
                                                         .tensor = options.mapping.tensor,
                                                         .expert = options.mapping.expert,
                                                         .pipeline = options.mapping.pipeline});
  model::GPTModel model = load_model(options.load, options.mapping, state);
  const config::ModelConfig& config = model.config();

  const SafetensorsFile input(options.input);
  if (!input.contains("input_ids")) throw Error("--input " + options.input + " has no 'input_ids' tensor");
  const Tensor ids = int64_tensor(input.tensor("input_ids"));
  const Tensor labels = input.contains("labels") ? int64_tensor(input.tensor("labels")) : Tensor();
  if (labels.defined() && labels.shape() != ids.shape())
    throw Error("'labels' must have the shape of 'input_ids'");
  const model::ForwardOutput out = train::pipeline_logits(model, state, ids, labels);
  // The last stage's first tp rank of the first data-parallel replica speaks for the run.
  if (!model.pipeline_layout().has_output_layer() || state.membership(GroupKind::kData).rank_in_group != 0 ||
      state.membership(GroupKind::kTensor).rank_in_group != 0)
    return 0;

  // The real vocabulary only: padded columns are not the checkpoint's.
  const Tensor logits = out.logits.slice(2, 0, config.vocab_size).contiguous();
  const Tensor loss = Tensor::from_vector<float>({static_cast<float>(out.lm_loss)}, {});
  std::vector<SafetensorsTensor> entries = {float_entry("logits", logits)};
  if (labels.defined()) entries.push_back(float_entry("loss", loss));
  write_safetensors(options.output, entries);
  std::printf("wrote %s: logits [%lld, %lld, %d]%s\n", options.output.c_str(), (long long)ids.size(0),
              (long long)ids.size(1), config.vocab_size,
              labels.defined() ? (", loss " + std::to_string(out.lm_loss)).c_str() : "");
  return 0;
}

// Under mpirun an error may stop some ranks only: report it and end them all.
int run_logits(const LogitsOptions& options) {
  const dist::World world(dist::identity_from_environment());
  if (world.communicator().size() == 1) return write_logits(world, options);
  try {
    return write_logits(world, options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moebench: error on rank %d: %s\n", world.communicator().rank(), e.what());
    std::fflush(stderr);
    world.abort(2);
  }
}

}  // namespace

void add_logits_command(CLI::App& app, Action& action) {
  auto options = std::make_shared<LogitsOptions>();
  auto* command = app.add_subcommand(
      "logits", "run a checkpoint on input_ids from a safetensors file; write logits (and loss with labels)");
  command->add_option("--load", options->load,
                      "Hugging Face directory (config.json + safetensors) or native checkpoint (metadata.json or tracker)")
      ->required();
  command->add_option("--input", options->input, "safetensors file with input_ids int64 [B,S] and optional labels")
      ->required();
  command->add_option("--output", options->output, "safetensors file to write: logits float32 [B,S,V], loss")
      ->required();
  command->add_option("--tensor-model-parallel-size,--tp", options->mapping.tensor,
                      "tensor-parallel ranks to split the weights over (under mpirun; MoE needs --sequence-parallel)")
      ->check(CLI::PositiveNumber);
  command->add_flag("--sequence-parallel", options->mapping.sequence_parallel,
                    "split the tokens between the tensor-parallel blocks over the tp ranks (Megatron's flag)");
  command->add_option("--pipeline-model-parallel-size,--pp", options->mapping.pipeline,
                      "pipeline stages to run the model on (under mpirun)")
      ->check(CLI::PositiveNumber);
  command->add_option("--expert-model-parallel-size,--ep", options->mapping.expert,
                      "expert-parallel ranks to split the experts over (under mpirun)")
      ->check(CLI::PositiveNumber);
  command->add_option("--decoder-first-pipeline-num-layers", options->mapping.first_stage_layers,
                      "layers of the first stage when PP does not divide the layers");
  command->add_option("--decoder-last-pipeline-num-layers", options->mapping.last_stage_layers,
                      "layers of the last stage when PP does not divide the layers");
  command->callback([options, &action] { action = [options] { return run_logits(*options); }; });
}

}  // namespace moebench::cli
