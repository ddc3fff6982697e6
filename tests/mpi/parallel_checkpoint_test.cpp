// Checkpoints of parallel runs hold the one-rank tensors: a TP2 run's
// checkpoint loads into a one-rank model with the run's gathered weights,
// and a TP2 x PP2 run's checkpoint (each stage its layers, each tp rank its
// slices, the Adam moments with them) resumes on one rank with the next
// iteration the parallel run logged: the same losses, gradient norm and
// final weights.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/native_model.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/model/gpt_model.h"
#include "mpi_test_world.h"
#include "zoo_training.h"

namespace moebench::train {
namespace {

namespace fs = std::filesystem;

// A fresh directory name every rank agrees on (rank 0's process id); rank 0
// removes the directory when the test ends.
class SharedCheckpointDirectory {
 public:
  SharedCheckpointDirectory(dist::Communicator& world, const std::string& prefix) : world_(world) {
    Tensor stamp = Tensor::from_vector(std::vector<int64_t>{int64_t(::getpid())});
    world.broadcast(stamp, 0);
    path_ = fs::temp_directory_path() / (prefix + std::to_string(stamp.data<int64_t>()[0]));
  }
  ~SharedCheckpointDirectory() {
    world_.barrier();
    if (world_.rank() == 0) fs::remove_all(path_);
  }
  SharedCheckpointDirectory(const SharedCheckpointDirectory&) = delete;
  SharedCheckpointDirectory& operator=(const SharedCheckpointDirectory&) = delete;

  const fs::path& path() const { return path_; }

 private:
  dist::Communicator& world_;
  fs::path path_;
};

// The shards of the split weights, their distributed Adam moments and the
// replicated weights once.
TEST(TensorParallelCheckpoint, HoldsTheOneRankTensors) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2) GTEST_SKIP() << "runs on 2 ranks";
  const SharedCheckpointDirectory directory(world, "moebench_tp_checkpoint_");
  const ZooOutcome outcome = train_zoo_model(world, {.model = "tiny-deepseek-v2",
                                                     .distributed_optimizer = true,
                                                     .tensor_parallel = 2,
                                                     .micro_batch = 2,
                                                     .save = directory.path()});
  model::GPTModel loaded = ckpt::load_native_model(ckpt::NativeCheckpoint(directory.path()));
  EXPECT_EQ(outcome.weights.size(), loaded.parameters().size());
  for (const model::Parameter& saved : outcome.weights)
    EXPECT_EQ(relative_difference(loaded.parameter(saved.name).value, saved.value), 0.0) << saved.name;
}

TEST(TensorAndPipelineParallelCheckpoint, ResumesOnOneRankWithTheNextIteration) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 4) GTEST_SKIP() << "runs on 4 ranks (TP2 x PP2)";
  const SharedCheckpointDirectory directory(world, "moebench_tp_pp_checkpoint_");
  constexpr int kSaved = kZooIterations - 1;
  // Plain Adam, whose moments every rank saves as slices of its stage's tensors.
  const ZooRun run = {.model = "tiny-mixtral",
                      .tensor_parallel = 2,
                      .pipeline = 2,
                      .num_layers = 4,
                      .flags = {"--save-interval", std::to_string(kSaved)},
                      .save = directory.path()};
  const ZooOutcome parallel = train_zoo_model(world, run);

  ZooRun resumed = run.one_rank();
  const fs::path saved = directory.path() / ckpt::checkpoint_name(kSaved);
  resumed.flags.insert(resumed.flags.end(), {"--load", saved.string()});
  dist::SingleRankCommunicator one_rank;
  const ZooOutcome reference = train_zoo_model(one_rank, resumed);
  ASSERT_EQ(reference.records.size(), size_t(kZooIterations - kSaved));
  EXPECT_EQ(reference.records.front().iteration, kSaved + 1);
  const ZooDifferences worst = expect_matches_one_rank(parallel, reference);
  if (world.rank() == 0)
    std::printf("[ info ] TP2 x PP2 checkpoint of iteration %d resumed on 1 rank: largest relative difference of "
                "losses %.2e, grad norms %.2e, weights %.2e\n",
                kSaved, worst.loss, worst.grad_norm, worst.weight);
}

}  // namespace
}  // namespace moebench::train
