#include "moebench/ckpt/vocabulary_padding.h"

#include <algorithm>
#include <string>

#include "moebench/ckpt/native_model.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

// The tensors of padded_vocab_size rows: the two parameters and their Adam
// moments (train/optimizer.h's names).
bool is_vocabulary_sized(const std::string& name) {
  for (const std::string prefix : {"", "optimizer.exp_avg.", "optimizer.exp_avg_sq."})
    for (const std::string parameter : {"embedding.word_embeddings.weight", "output_layer.weight"})
      if (name == prefix + parameter) return true;
  return false;
}

// Same rank and the same sizes past the rows: only the padding differs.
bool differs_in_rows_only(const std::vector<int64_t>& saved, const std::vector<int64_t>& model) {
  return saved.size() == model.size() && !saved.empty() && saved[0] != model[0] &&
         std::equal(saved.begin() + 1, saved.end(), model.begin() + 1);
}

}  // namespace

void read_across_vocabulary_padding(const NativeCheckpoint& checkpoint, const ShardedTensor& target) {
  const auto stored = checkpoint.metadata().tensors.find(target.name);
  if (stored == checkpoint.metadata().tensors.end() || !is_vocabulary_sized(target.name) ||
      !differs_in_rows_only(stored->second.shape, target.global_shape)) {
    checkpoint.read(target);
    return;
  }
  const CheckpointMetadata& metadata = checkpoint.metadata();
  const std::vector<int64_t>& saved_shape = stored->second.shape;
  const int64_t saved_rows = saved_shape[0], model_rows = target.global_shape[0];
  const auto mismatch = [&](const std::string& why) {
    return Error("checkpoint " + checkpoint.directory().string() + ": '" + target.name + "' is " +
                 format_dims(saved_shape) + " there but the model expects " + format_dims(target.global_shape) + " " +
                 why + "; load it with the model flags it was saved with (its metadata.json model_args)");
  };
  if (metadata.model_args.empty()) throw mismatch("and the checkpoint records no model flags (its real vocabulary)");
  const int64_t vocab_size = checkpoint_model_config(metadata).vocab_size;
  if (std::min(saved_rows, model_rows) < vocab_size)
    throw mismatch("and only rows past the real vocabulary of " + std::to_string(vocab_size) + " may differ");
  // Rows past the saved ones are padding (zero); the rest come from the checkpoint.
  Tensor(target.local).fill_(0.0);
  TensorSlice common = target.slice;
  const int64_t end = std::min(common.offsets[0] + common.sizes[0], saved_rows);
  common.sizes[0] = std::max<int64_t>(0, end - common.offsets[0]);
  if (common.numel() == 0) return;
  checkpoint.read({target.name, saved_shape, common, view_of_region(target.local, target.slice, common)});
}

}  // namespace moebench::ckpt
