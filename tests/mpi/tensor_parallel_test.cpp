// Tensor parallelism is exact: zoo models trained with TP2 (sequence
// parallel or not, alone, with EP2 or with DP2 on 4 ranks) log the losses and
// gradient norms and end with the weights (gathered over tp) of one rank
// training on the same global batches. Each scenario runs on the rank count
// it names and is skipped on the others, to keep the suite short.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/dist/single_rank_communicator.h"
#include "mpi_test_world.h"
#include "zoo_training.h"

namespace moebench::train {
namespace {

struct Scenario {
  std::string name;
  int world_size = 2;
  ZooRun run;
};

// gtest names a failing scenario by this instead of its bytes.
void PrintTo(const Scenario& scenario, std::ostream* out) { *out << scenario.name; }

class TensorParallelTraining : public ::testing::TestWithParam<Scenario> {};

TEST_P(TensorParallelTraining, MatchesOneRankOnTheSameGlobalBatch) {
  dist::Communicator& world = dist::test_world();
  const Scenario& scenario = GetParam();
  if (world.size() != scenario.world_size) GTEST_SKIP() << "runs on " << scenario.world_size << " ranks";
  const ZooOutcome parallel = train_zoo_model(world, scenario.run);
  dist::SingleRankCommunicator one_rank;
  const ZooOutcome reference = train_zoo_model(one_rank, scenario.run.one_rank());
  const ZooDifferences worst = expect_matches_one_rank(parallel, reference);
  // Without EP every rank holds every parameter, gathered to its one-rank shape.
  if (scenario.run.expert_parallel == 1) {
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
        Scenario{"tiny_mixtral_tp2_sp", 2, {.model = "tiny-mixtral", .tensor_parallel = 2, .micro_batch = 2}},
        // MLA with q-LoRA, shared experts, a dense first layer, per-sequence aux loss.
        Scenario{"tiny_deepseek_v2_tp2_sp", 2, {.model = "tiny-deepseek-v2", .tensor_parallel = 2, .micro_batch = 2}},
        // Without sequence parallelism (dense variants); Qwen3's q/k layernorms see half the heads each.
        Scenario{"tiny_mixtral_dense_tp2", 2,
                 {.model = "tiny-mixtral", .tensor_parallel = 2, .sequence_parallel = false, .flags = kZooDenseFlags}},
        Scenario{"tiny_deepseek_v2_dense_tp2", 2,
                 {.model = "tiny-deepseek-v2", .tensor_parallel = 2, .sequence_parallel = false, .flags = kZooDenseFlags}},
        Scenario{"tiny_qwen3_moe_dense_tp2", 2,
                 {.model = "tiny-qwen3-moe", .tensor_parallel = 2, .sequence_parallel = false, .flags = kZooDenseFlags}},
        // TP2 x EP2 on 4 ranks: the ep groups fold over the tp ranks.
        Scenario{"tiny_mixtral_tp2_ep2_alltoall", 4,
                 {.model = "tiny-mixtral",
                  .distributed_optimizer = true,
                  .tensor_parallel = 2,
                  .expert_parallel = 2,
                  .dispatcher = "alltoall"}},
        Scenario{"tiny_deepseek_v2_tp2_ep2_allgather", 4,
                 {.model = "tiny-deepseek-v2",
                  .distributed_optimizer = true,
                  .tensor_parallel = 2,
                  .expert_parallel = 2,
                  .dispatcher = "allgather"}},
        // TP2 x DP2 on 4 ranks, with the distributed optimizer and with plain Adam.
        Scenario{"tiny_mixtral_tp2_dp2_distributed_optimizer", 4,
                 {.model = "tiny-mixtral", .distributed_optimizer = true, .tensor_parallel = 2}},
        Scenario{"tiny_deepseek_v2_tp2_dp2_adam", 4, {.model = "tiny-deepseek-v2", .tensor_parallel = 2}}),
    [](const ::testing::TestParamInfo<Scenario>& info) { return info.param.name; });

// Bad mappings fail in validation, before any group is built (a world of 4
// ranks, whatever the test world: nothing communicates).
TEST(TensorParallelValidation, RejectsMappingsThatDoNotSplit) {
  auto error_of = [](const ZooRun& run) -> std::string {
    try {
      validate_zoo_run(run, 4);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  using ::testing::HasSubstr;
  // tiny-mixtral has 2 query groups.
  EXPECT_THAT(error_of({.model = "tiny-mixtral", .tensor_parallel = 4}),
              HasSubstr("num-query-groups 2 is not divisible by TP=4"));
  EXPECT_THAT(error_of({.model = "tiny-mixtral", .tensor_parallel = 2, .sequence_parallel = false}),
              HasSubstr("MoE with TP=2 needs sequence parallelism"));
  EXPECT_THAT(error_of({.model = "tiny-mixtral", .tensor_parallel = 2, .flags = {"--expert-tensor-parallel-size", "2"}}),
              HasSubstr("--expert-tensor-parallel-size 2"));
  EXPECT_EQ(error_of({.model = "tiny-mixtral", .tensor_parallel = 2}), "");
}

}  // namespace
}  // namespace moebench::train
