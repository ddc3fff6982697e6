#include "moebench/train/training_checkpoint.h"

#include <set>
#include <string>
#include <utility>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/tensor_parallel_pieces.h"
#include "moebench/ckpt/vocabulary_padding.h"
#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#ifdef MOEBENCH_WITH_CUDA
#include "moebench/core/device_transfer.h"
#endif

namespace moebench::train {
namespace {

namespace fs = std::filesystem;

// Every rank of the world: tp_dp_cp and pp together span it.
void world_barrier(const dist::ParallelState& state) {
  state.group(GroupKind::kTensorAndDataWithContext).barrier();
  state.group(GroupKind::kPipeline).barrier();
}

// The model's weights and buffers: the dense ones (router expert biases
// included) with `dense`, the routed experts this rank holds with `experts`;
// tensor-parallel weights as their slices of the one-rank tensors. A GPU
// model's weights are its fp32 main copies, so that a checkpoint holds the
// same float32 weights whichever device trained it.
std::vector<ckpt::ShardedTensor> model_pieces(TrainableModel& model, bool dense, bool experts) {
  std::vector<ckpt::ShardedTensor> pieces;
  for (const model::Parameter* p : model.parameters())
    if (p->is_expert ? experts : dense)
      for (ckpt::ShardedTensor& piece :
           ckpt::tensor_parallel_pieces(p->name, p->main.defined() ? p->main : p->value, p->tensor_parallel))
        pieces.push_back(std::move(piece));
  if (dense)
    for (const model::Buffer& b : model.buffers()) pieces.push_back(ckpt::whole_tensor(b.name, b.value));
  return pieces;
}

// The names whose pieces only tp rank 0 saves: dense weights not split over
// tp and their Adam moments, and buffers (expert biases), all replicated over
// tp. Routed experts are never split over tp (expert-TP 1) and the tp ranks
// hold different experts: their weights and moments follow the expert-replica
// rule instead.
std::set<std::string> tensor_parallel_duplicates(TrainableModel& model, int tensor_parallel_rank) {
  std::set<std::string> names;
  for (const model::Parameter* p : model.parameters()) {
    if (p->is_expert || !model::is_tensor_parallel_duplicate(*p, tensor_parallel_rank)) continue;
    names.insert(p->name);
    names.insert(exp_avg_name(p->name));
    names.insert(exp_avg_sq_name(p->name));
  }
  if (tensor_parallel_rank != 0)
    for (const model::Buffer& b : model.buffers()) names.insert(b.name);
  return names;
}

// Adam's moments of a routed expert's weight: replicated over expt_dp, not dp.
bool is_expert_state(const std::string& piece, const std::set<std::string>& expert_parameters) {
  for (const std::string prefix : {"optimizer.exp_avg.", "optimizer.exp_avg_sq."})
    if (piece.starts_with(prefix) && expert_parameters.contains(piece.substr(prefix.size()))) return true;
  return false;
}

// The checkpoint reads and writes host memory: a piece whose tensor lives on
// a GPU goes through a host copy, made from the device before a save and
// copied back into it after a load (a GPU model's pieces are whole tensors:
// tensor parallelism runs on the CPU engine only).
class HostMirror {
 public:
  explicit HostMirror(std::vector<ckpt::ShardedTensor> pieces) : pieces_(std::move(pieces)) {
    for (ckpt::ShardedTensor& piece : pieces_) {
      if (piece.local.device().is_cpu()) continue;
      if (!piece.local.is_contiguous())
        throw Error("checkpoint piece '" + piece.name + "' is a strided view of " + piece.local.describe() +
                    "; a GPU model saves whole tensors");
      devices_.push_back({piece.local, ops::to_cpu(piece.local)});
      piece.local = devices_.back().second;
    }
  }
  const std::vector<ckpt::ShardedTensor>& pieces() const { return pieces_; }
  // After the pieces were read: every host copy back into its device tensor.
  void copy_back() const {
#ifdef MOEBENCH_WITH_CUDA
    for (const auto& [device, host] : devices_) copy_into(device, host);
#endif
  }

 private:
  std::vector<ckpt::ShardedTensor> pieces_;
  std::vector<std::pair<Tensor, Tensor>> devices_;  // (device tensor, its host copy)
};

// Reads `pieces` from `checkpoint` into their tensors, wherever they live;
// the vocabulary-sized ones across paddings (the run's TP may pad otherwise).
void read_pieces(const ckpt::NativeCheckpoint& checkpoint, std::vector<ckpt::ShardedTensor> pieces) {
  const HostMirror mirror(std::move(pieces));
  for (const ckpt::ShardedTensor& piece : mirror.pieces()) ckpt::read_across_vocabulary_padding(checkpoint, piece);
  mirror.copy_back();
}

// A GPU model computes with bf16 copies of its fp32 main weights: after the
// main weights were loaded, the copies follow them.
void refresh_compute_weights(TrainableModel& model) {
#ifdef MOEBENCH_WITH_CUDA
  for (model::Parameter* p : model.parameters())
    if (p->main.defined()) copy_into(p->value, ops::cast(p->main, p->value.dtype()));
#else
  (void)model;
#endif
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
  if (contents.optimizer) {
    std::set<std::string> expert_parameters;
    for (const model::Parameter* p : model.parameters())
      if (p->is_expert) expert_parameters.insert(p->name);
    for (ckpt::ShardedTensor& piece : optimizer.state_pieces()) {
      const bool saves = optimizer.state_is_sharded() ||
                         (is_expert_state(piece.name, expert_parameters) ? first_expert_replica : first_replica);
      if (saves) pieces.push_back(std::move(piece));
    }
  }
  const std::set<std::string> duplicates =
      tensor_parallel_duplicates(model, state.membership(GroupKind::kTensor).rank_in_group);
  std::erase_if(pieces, [&duplicates](const ckpt::ShardedTensor& piece) { return duplicates.contains(piece.name); });
  ckpt::write_rank_file(staging, state.world_rank(), HostMirror(std::move(pieces)).pieces());
  world_barrier(state);
  if (state.world_rank() == 0) ckpt::commit_checkpoint(root, metadata, state.grid().world_size());
  world_barrier(state);
}

ckpt::TrainingProgress load_training_checkpoint(const fs::path& path, TrainableModel& model, Optimizer& optimizer,
                                                const TrainConfig& config) {
  const ckpt::NativeCheckpoint checkpoint(path);
  const ckpt::CheckpointMetadata& saved = checkpoint.metadata();
  read_pieces(checkpoint, model_pieces(model, true, true));
  refresh_compute_weights(model);
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
    read_pieces(checkpoint, optimizer.state_pieces());
    optimizer.restore_steps_taken(*saved.optimizer_steps);
  } else {
    // The schedule belongs to the optimizer's state: without it, it restarts (as Megatron).
    progress.scheduler_samples = 0;
  }
  return progress;
}

}  // namespace moebench::train
