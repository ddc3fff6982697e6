#include "moebench/train/training_checkpoint.h"

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/core/error.h"

namespace moebench::train {
namespace {

namespace fs = std::filesystem;

// Every rank of the world: tp_dp_cp and pp together span it.
void world_barrier(const dist::ParallelState& state) {
  state.group(GroupKind::kTensorAndDataWithContext).barrier();
  state.group(GroupKind::kPipeline).barrier();
}

// The model's weights and buffers: the dense ones (router expert biases
// included) with `dense`, the routed experts this rank holds with `experts`.
std::vector<ckpt::ShardedTensor> model_pieces(TrainableModel& model, bool dense, bool experts) {
  std::vector<ckpt::ShardedTensor> pieces;
  for (const model::Parameter* p : model.parameters())
    if (p->is_expert ? experts : dense) pieces.push_back(ckpt::whole_tensor(p->name, p->value));
  if (dense)
    for (const model::Buffer& b : model.buffers()) pieces.push_back(ckpt::whole_tensor(b.name, b.value));
  return pieces;
}

}  // namespace

void save_training_checkpoint(const fs::path& root, TrainableModel& model, Optimizer& optimizer,
                              const dist::ParallelState& state, const TrainingCheckpointContents& contents) {
  ckpt::CheckpointMetadata metadata;
  if (contents.progress.iteration > 0) metadata.iteration = contents.progress.iteration;
  metadata.progress = contents.progress;
  metadata.model_args = contents.model_args;
  if (contents.optimizer) metadata.optimizer_steps = optimizer.steps_taken();
  if (contents.rng) metadata.rng_seed = contents.seed;
  const fs::path staging = ckpt::staging_directory(root, ckpt::checkpoint_name(metadata.iteration));

  // A crashed save may have left a staging directory: start it afresh.
  if (state.world_rank() == 0) {
    fs::remove_all(staging);
    fs::create_directories(staging);
  }
  world_barrier(state);
  // Replicas hold the same weights: the first saves them, over dp for dense
  // weights and over expt_dp for the routed experts (so with EP every ep
  // rank saves its own experts).
  const bool first_replica = state.membership(GroupKind::kData).rank_in_group == 0;
  const bool first_expert_replica = state.membership(GroupKind::kExpertData).rank_in_group == 0;
  std::vector<ckpt::ShardedTensor> pieces = model_pieces(model, first_replica, first_expert_replica);
  if (contents.optimizer && (first_replica || optimizer.state_is_sharded()))
    for (ckpt::ShardedTensor& piece : optimizer.state_pieces()) pieces.push_back(std::move(piece));
  ckpt::write_rank_file(staging, state.world_rank(), pieces);
  world_barrier(state);
  if (state.world_rank() == 0) ckpt::commit_checkpoint(root, metadata, state.grid().world_size());
  world_barrier(state);
}

ckpt::TrainingProgress load_training_checkpoint(const fs::path& path, TrainableModel& model, Optimizer& optimizer,
                                                const TrainConfig& config) {
  const ckpt::NativeCheckpoint checkpoint(path);
  const ckpt::CheckpointMetadata& saved = checkpoint.metadata();
  for (const ckpt::ShardedTensor& piece : model_pieces(model, true, true)) checkpoint.read(piece);
  if (config.finetune) return {};

  const bool release = !saved.iteration;
  ckpt::TrainingProgress progress = saved.progress;
  if (config.load_rng && !release && saved.rng_seed && *saved.rng_seed != config.seed)
    throw Error("checkpoint " + checkpoint.directory().string() + " was saved with --seed " +
                std::to_string(*saved.rng_seed) + " but this run has --seed " + std::to_string(config.seed) +
                "; resume with --seed " + std::to_string(*saved.rng_seed) + " or pass --no-load-rng");
  if (config.load_optim && !release) {
    if (!saved.optimizer_steps)
      throw Error("checkpoint " + checkpoint.directory().string() +
                  " holds no optimizer state (saved with --no-save-optim); pass --no-load-optim or --finetune");
    for (const ckpt::ShardedTensor& piece : optimizer.state_pieces()) checkpoint.read(piece);
    optimizer.restore_steps_taken(*saved.optimizer_steps);
  } else {
    // The schedule belongs to the optimizer's state: without it, it restarts (as Megatron).
    progress.scheduler_samples = 0;
  }
  return progress;
}

}  // namespace moebench::train
