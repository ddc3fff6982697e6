#pragma once
// A training run in and out of the native checkpoint format (ckpt/
// native_checkpoint.h): model weights and buffers (router expert biases) as
// saved by data-parallel rank 0, Adam's moments as each rank holds them (all
// on rank 0, or one flat shard per rank under the distributed optimizer),
// Adam's step count, the seed, and the training position (iteration,
// consumed samples, learning-rate schedule). Loading reads each rank's own
// pieces, so DP size and optimizer kind may differ between save and load.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/ckpt/checkpoint_metadata.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/train/optimizer.h"
#include "moebench/train/train_config.h"
#include "moebench/train/trainable_model.h"

namespace moebench::train {

struct TrainingCheckpointContents {
  ckpt::TrainingProgress progress;  // progress.iteration 0 saves a release checkpoint
  bool optimizer = true;            // Adam's moments and step count (false: --no-save-optim)
  bool rng = true;                  // the seed (false: --no-save-rng)
  int64_t seed = 0;
  std::vector<std::string> model_args;  // the Megatron flags that rebuild the model
};

// Collective over every rank of `state`: each writes its rank file, then
// world rank 0 commits the checkpoint under `root`.
void save_training_checkpoint(const std::filesystem::path& root, TrainableModel& model, Optimizer& optimizer,
                              const dist::ParallelState& state, const TrainingCheckpointContents& contents);

// Reads the native checkpoint at `path` (a root or a checkpoint directory)
// into the model and, unless --finetune or --no-load-optim, the optimizer;
// returns where training continues (all zero with --finetune; the schedule's
// position only with the optimizer state, as Megatron). Throws an Error when
// the checkpoint does not fit the model (a vocabulary padded otherwise fits:
// ckpt/vocabulary_padding.h), lacks the optimizer state asked for
// or was saved with another seed (unless --no-load-rng).
ckpt::TrainingProgress load_training_checkpoint(const std::filesystem::path& path, TrainableModel& model,
                                                Optimizer& optimizer, const TrainConfig& config);

}  // namespace moebench::train
