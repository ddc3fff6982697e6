// Tensor parallelism is exact: zoo models trained with TP2 (sequence
// parallel or not, alone, with EP2 or with DP2 on 4 ranks) log the losses and
// gradient norms and end with the weights (gathered over tp) of one rank
// training on the same global batches. Each scenario runs on the rank count
// it names and is skipped on the others, to keep the suite short.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "moebench/ckpt/native_model.h"
#include "moebench/core/error.h"
#include "moebench/dist/single_rank_communicator.h"
#include "mpi_test_world.h"
#include "parallel_training_harness.h"

namespace moebench::train {
namespace {

using testing::ParallelMapping;

struct Scenario {
  std::string name;
  std::string model;
  int world_size = 2;
  ParallelMapping mapping;
};

// gtest names a failing scenario by this instead of its bytes.
void PrintTo(const Scenario& scenario, std::ostream* out) { *out << scenario.name; }

// The zoo model with dense layers only: MoE with TP needs sequence parallelism.
const std::vector<std::string> kDense = {"--num-experts", "", "--moe-layer-freq", ""};

class TensorParallelTraining : public ::testing::TestWithParam<Scenario> {};

TEST_P(TensorParallelTraining, MatchesOneRankOnTheSameGlobalBatch) {
  dist::Communicator& world = dist::test_world();
  const Scenario& scenario = GetParam();
  if (world.size() != scenario.world_size) GTEST_SKIP() << "runs on " << scenario.world_size << " ranks";
  const testing::Outcome parallel = testing::train_on(world, scenario.model, scenario.mapping);
  dist::SingleRankCommunicator one_rank;
  const testing::Outcome reference = testing::train_on(one_rank, scenario.model, scenario.mapping.one_rank());
  const testing::WorstDifferences worst = testing::expect_same_training(parallel, reference);
  // Without EP every rank holds every parameter, gathered to its one-rank shape.
  if (scenario.mapping.expert == 1) {
    EXPECT_EQ(parallel.weights.size(), reference.weights.size());
  }
  if (world.rank() == 0)
    std::printf("[ info ] %s vs 1 rank: largest relative difference of losses %.2e, grad norms %.2e, weights %.2e\n",
                scenario.name.c_str(), worst.loss, worst.grad_norm, worst.weight);
}

INSTANTIATE_TEST_SUITE_P(
    ZooModels, TensorParallelTraining,
    ::testing::Values(
        // GQA + MoE; MBS 2 puts two sequences in each microbatch's token rows.
        Scenario{"tiny_mixtral_tp2_sp", "tiny-mixtral", 2, {.tensor = 2, .micro_batch = 2}},
        // MLA with q-LoRA, shared experts, a dense first layer, per-sequence aux loss.
        Scenario{"tiny_deepseek_v2_tp2_sp", "tiny-deepseek-v2", 2, {.tensor = 2, .micro_batch = 2}},
        // Without sequence parallelism (dense variants); Qwen3's q/k layernorms see half the heads each.
        Scenario{"tiny_mixtral_dense_tp2", "tiny-mixtral", 2,
                 {.tensor = 2, .sequence_parallel = false, .extra_flags = kDense}},
        Scenario{"tiny_deepseek_v2_dense_tp2", "tiny-deepseek-v2", 2,
                 {.tensor = 2, .sequence_parallel = false, .extra_flags = kDense}},
        Scenario{"tiny_qwen3_moe_dense_tp2", "tiny-qwen3-moe", 2,
                 {.tensor = 2, .sequence_parallel = false, .extra_flags = kDense}},
        // TP2 x EP2 on 4 ranks: the ep groups fold over the tp ranks.
        Scenario{"tiny_mixtral_tp2_ep2_alltoall", "tiny-mixtral", 4,
                 {.tensor = 2, .expert = 2, .distributed_optimizer = true, .dispatcher = "alltoall"}},
        Scenario{"tiny_deepseek_v2_tp2_ep2_allgather", "tiny-deepseek-v2", 4,
                 {.tensor = 2, .expert = 2, .distributed_optimizer = true, .dispatcher = "allgather"}},
        // TP2 x DP2 on 4 ranks, with the distributed optimizer and with plain Adam.
        Scenario{"tiny_mixtral_tp2_dp2_distributed_optimizer", "tiny-mixtral", 4,
                 {.tensor = 2, .distributed_optimizer = true}},
        Scenario{"tiny_deepseek_v2_tp2_dp2_adam", "tiny-deepseek-v2", 4, {.tensor = 2}}),
    [](const ::testing::TestParamInfo<Scenario>& info) { return info.param.name; });

// A TP2 run's checkpoint holds the one-rank tensors (the shards of the
// split weights, their distributed Adam moments, the replicated weights
// once): a one-rank model loaded from it has the run's gathered weights.
TEST(TensorParallelCheckpoint, HoldsTheOneRankTensors) {
  dist::Communicator& world = dist::test_world();
  if (world.size() != 2) GTEST_SKIP() << "runs on 2 ranks";
  Tensor stamp = Tensor::from_vector(std::vector<int64_t>{int64_t(::getpid())});
  world.broadcast(stamp, 0);
  const std::filesystem::path directory =
      std::filesystem::temp_directory_path() / ("moebench_tp_checkpoint_" + std::to_string(stamp.data<int64_t>()[0]));
  const testing::Outcome outcome = testing::train_on(
      world, "tiny-deepseek-v2", {.tensor = 2, .distributed_optimizer = true, .micro_batch = 2, .save = directory});
  model::GPTModel loaded = ckpt::load_native_model(ckpt::NativeCheckpoint(directory));
  EXPECT_EQ(outcome.weights.size(), loaded.parameters().size());
  for (const model::Parameter& saved : outcome.weights)
    EXPECT_EQ(testing::relative_difference(loaded.parameter(saved.name).value, saved.value), 0.0) << saved.name;
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(directory);
}

// Bad mappings fail in validation, before any group is built (a world of 4
// ranks, whatever the test world: nothing communicates).
TEST(TensorParallelValidation, RejectsMappingsThatDoNotSplit) {
  auto error_of = [](const std::string& model, const ParallelMapping& mapping) -> std::string {
    try {
      testing::configured_run(model, 4, mapping);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  using ::testing::HasSubstr;
  // tiny-mixtral has 2 query groups.
  EXPECT_THAT(error_of("tiny-mixtral", {.tensor = 4}), HasSubstr("num-query-groups 2 is not divisible by TP=4"));
  EXPECT_THAT(error_of("tiny-mixtral", {.tensor = 2, .sequence_parallel = false}),
              HasSubstr("MoE with TP=2 needs sequence parallelism"));
  EXPECT_THAT(error_of("tiny-mixtral", {.tensor = 2, .extra_flags = {"--expert-tensor-parallel-size", "2"}}),
              HasSubstr("--expert-tensor-parallel-size 2"));
  EXPECT_EQ(error_of("tiny-mixtral", {.tensor = 2}), "");
}

}  // namespace
}  // namespace moebench::train
