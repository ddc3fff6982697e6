// Checkpoints of parallel runs hold the one-rank tensors: a TP2 run's
// checkpoint loads into a one-rank model with the run's gathered weights.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/native_model.h"
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

}  // namespace
}  // namespace moebench::train
