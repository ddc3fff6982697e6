// `moebench convert`: checkpoints between Hugging Face's hub layout and our
// native distributed format (the guide's checkpoint conversion step).
//   hf-to-native --load HF_DIR --save OUT_DIR [--tp N --pp N --ep N]
//   native-to-hf --load DIR --save HF_DIR
// --tp / --pp / --ep choose how the rank files divide the tensors (as a run
// under that mapping saves them: TP x PP x EP files, each tensor-parallel
// weight in slices tagged with their place in the one-rank tensor); the
// checkpoint loads under any mapping whatever they are, so they only shape
// the files (how many, how large), never what a run can load it into.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "moebench/ckpt/hf_to_native.h"
#include "moebench/ckpt/native_to_hf.h"

namespace moebench::cli {
namespace {

struct ConvertOptions {
  std::string load, save;
  ckpt::ParallelMapping mapping;
};

// One line redrawn in place, only when stderr is a terminal.
void draw_progress(const ckpt::ConversionProgress& progress) {
  constexpr int kWidth = 40;
  const int filled = progress.pieces_total == 0 ? kWidth : int(kWidth * progress.pieces_done / progress.pieces_total);
  std::fprintf(stderr, "\r[%-*s] %lld/%lld tensors, %.1f MiB", kWidth, std::string(size_t(filled), '#').c_str(),
               (long long)progress.pieces_done, (long long)progress.pieces_total, progress.bytes_written / 1048576.0);
  std::fflush(stderr);
}

int hf_to_native(const ConvertOptions& options) {
  ckpt::HfToNativeOptions convert{options.load, options.save, options.mapping, {}};
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  if (terminal) convert.on_progress = draw_progress;
  const ckpt::ConversionProgress done = ckpt::convert_hf_to_native(convert);
  if (terminal) std::fprintf(stderr, "\n");
  std::printf("converted %s into %s/release (TP=%d PP=%d EP=%d, %d rank files%s)\n", options.load.c_str(),
              options.save.c_str(), options.mapping.tp, options.mapping.pp, options.mapping.ep,
              options.mapping.rank_count(),
              done.ranks_skipped ? (", " + std::to_string(done.ranks_skipped) + " kept from an interrupted run").c_str()
                                 : "");
  return 0;
}

int native_to_hf(const ConvertOptions& options) {
  ckpt::convert_native_to_hf({options.load, options.save});
  std::printf("converted %s into the Hugging Face directory %s\n", options.load.c_str(), options.save.c_str());
  return 0;
}

}  // namespace

void add_convert_command(CLI::App& app, Action& action) {
  auto* convert = app.add_subcommand("convert", "convert checkpoints between Hugging Face and moebench's native format");
  convert->require_subcommand(1);
  auto options = std::make_shared<ConvertOptions>();
  auto* to_native = convert->add_subcommand("hf-to-native", "a Hugging Face checkpoint into a native checkpoint");
  to_native->add_option("--load", options->load, "Hugging Face model directory (config.json + safetensors)")->required();
  to_native->add_option("--save", options->save, "native checkpoint root to write (release/ + tracker)")->required();
  to_native
      ->add_option("--tp", options->mapping.tp,
                   "write the rank files of a TP-way run: each tensor-parallel weight split in TP slices as Megatron "
                   "splits it (heads, vocabulary, FFN must divide); any TP loads the checkpoint")
      ->check(CLI::PositiveNumber);
  to_native
      ->add_option("--pp", options->mapping.pp,
                   "write the rank files of a PP-stage run (layers must divide); any PP loads the checkpoint")
      ->check(CLI::PositiveNumber);
  to_native
      ->add_option("--ep", options->mapping.ep,
                   "write the rank files of an EP-way run (experts must divide); any EP loads the checkpoint")
      ->check(CLI::PositiveNumber);
  to_native->callback([options, &action] { action = [options] { return hf_to_native(*options); }; });
  auto* to_hf = convert->add_subcommand("native-to-hf", "a native checkpoint into a Hugging Face directory");
  to_hf->add_option("--load", options->load, "native checkpoint (root or iteration directory)")->required();
  to_hf->add_option("--save", options->save, "Hugging Face directory to create")->required();
  to_hf->callback([options, &action] { action = [options] { return native_to_hf(*options); }; });
}

}  // namespace moebench::cli
