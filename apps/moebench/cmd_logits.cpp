// `moebench logits`: run a checkpoint on given token ids and write the logits
// (and the loss when labels are given), so users can check a converted
// checkpoint against their own reference.
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "commands.h"
#include "moebench/ckpt/checkpoint_format.h"
#include "moebench/ckpt/hf_import.h"
#include "moebench/ckpt/native_model.h"
#include "moebench/ckpt/safetensors.h"
#include "moebench/core/error.h"

namespace moebench::cli {
namespace fs = std::filesystem;
namespace {

struct LogitsOptions {
  std::string load, input, output;
};

Tensor int64_tensor(const SafetensorsTensor& t) {
  if (t.shape.size() != 2) throw Error("'" + t.name + "' must be [batch, sequence], got " + std::to_string(t.shape.size()) + " dims");
  return Tensor::from_vector<int64_t>(to_int64_vector(t), t.shape);
}

SafetensorsTensor float_entry(const std::string& name, const Tensor& t) {
  const auto* bytes = reinterpret_cast<const std::byte*>(t.data<float>());
  return {name, "F32", t.shape(), {bytes, t.nbytes()}};
}

// A Hugging Face directory or a native checkpoint, whichever --load names.
model::GPTModel load_model(const fs::path& dir) {
  if (ckpt::detect_checkpoint_format(dir) == ckpt::CheckpointFormat::kNative)
    return ckpt::load_native_model(ckpt::NativeCheckpoint(dir));
  const ckpt::HfModelSpec spec = ckpt::read_hf_config(dir / "config.json");
  model::GPTModel model(spec.config, 0, spec.conventions);
  ckpt::load_hf_weights(model, SafetensorsCheckpoint(dir));
  return model;
}

int write_logits(const LogitsOptions& options) {
  model::GPTModel model = load_model(options.load);
  const config::ModelConfig& config = model.config();

  const SafetensorsFile input(options.input);
  if (!input.contains("input_ids")) throw Error("--input " + options.input + " has no 'input_ids' tensor");
  const Tensor ids = int64_tensor(input.tensor("input_ids"));
  const Tensor labels = input.contains("labels") ? int64_tensor(input.tensor("labels")) : Tensor();
  if (labels.defined() && labels.shape() != ids.shape())
    throw Error("'labels' must have the shape of 'input_ids'");
  const model::ForwardOutput out = model.forward(ids, labels, Tensor(), /*keep_logits=*/true);

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
  command->callback([options, &action] { action = [options] { return write_logits(*options); }; });
}

}  // namespace moebench::cli
