// Data and expert parallelism are exact: the ranks of the test world, each
// training on its share of every global batch, log the losses and gradient
// norms and end with the weights of one rank training on the whole global
// batch, with the plain Adam optimizer and with the distributed optimizer,
// for zoo models. With EP > 1 (folded into DP) each rank holds its ep rank's
// experts only, which must equal the one-rank run's experts of those names.
// Every rank also runs the one-rank reference itself: the models are tiny
// and it needs no communication.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "moebench/dist/single_rank_communicator.h"
#include "mpi_test_world.h"
#include "parallel_training_harness.h"

namespace moebench::train {
namespace {

using testing::ParallelMapping;

struct Scenario {
  std::string model;
  bool distributed_optimizer = false;
  int expert_parallel = 1;   // EP of the parallel run; the reference always has EP 1
  std::string dispatcher;    // --moe-token-dispatcher-type; empty: the model's own
};

ParallelMapping mapping_of(const Scenario& scenario) {
  return {.expert = scenario.expert_parallel,
          .distributed_optimizer = scenario.distributed_optimizer,
          .dispatcher = scenario.dispatcher};
}

class DataParallelTraining : public ::testing::TestWithParam<Scenario> {};

TEST_P(DataParallelTraining, MatchesOneRankOnTheSameGlobalBatch) {
  dist::Communicator& world = dist::test_world();
  if (world.size() % GetParam().expert_parallel != 0)
    GTEST_SKIP() << "EP=" << GetParam().expert_parallel << " needs a multiple of its ranks";
  const ParallelMapping mapping = mapping_of(GetParam());
  const testing::Outcome parallel = testing::train_on(world, GetParam().model, mapping);
  dist::SingleRankCommunicator one_rank;
  const testing::Outcome reference = testing::train_on(one_rank, GetParam().model, mapping.one_rank());
  const testing::WorstDifferences worst = testing::expect_same_training(parallel, reference);

  // Each rank holds its local experts only; the ep ranks together hold every expert.
  auto count_experts = [](const testing::Outcome& outcome) {
    return std::count_if(outcome.weights.begin(), outcome.weights.end(),
                         [](const model::Parameter& p) { return p.is_expert; });
  };
  const auto expert_weights = count_experts(parallel), reference_expert_weights = count_experts(reference);
  EXPECT_EQ(expert_weights * GetParam().expert_parallel, reference_expert_weights);
  EXPECT_EQ(parallel.weights.size() - size_t(expert_weights),
            reference.weights.size() - size_t(reference_expert_weights));
  if (world.rank() == 0)
    std::printf("[ info ] %d ranks (EP=%d) vs 1: largest relative difference of losses %.2e, grad norms %.2e, weights %.2e\n",
                world.size(), GetParam().expert_parallel, worst.loss, worst.grad_norm, worst.weight);
}

INSTANTIATE_TEST_SUITE_P(ZooModels, DataParallelTraining,
                         ::testing::Values(Scenario{"tiny-mixtral", false, 1, ""}, Scenario{"tiny-mixtral", true, 1, ""},
                                           Scenario{"tiny-deepseek-v2", false, 1, ""},
                                           Scenario{"tiny-deepseek-v2", true, 1, ""},
                                           // Aux-loss-free routing: expert biases move by the counts of all ranks.
                                           Scenario{"tiny-deepseek-v3", true, 1, ""},
                                           // Expert parallelism: EP2 (x expert-DP2 on 4 ranks) and EP4,
                                           // for both EP dispatchers; tiny-deepseek-v2 adds shared
                                           // experts and a dense first layer.
                                           Scenario{"tiny-mixtral", true, 2, "alltoall"},
                                           Scenario{"tiny-mixtral", true, 2, "allgather"},
                                           Scenario{"tiny-mixtral", true, 4, "alltoall"},
                                           Scenario{"tiny-mixtral", true, 4, "allgather"},
                                           Scenario{"tiny-deepseek-v2", true, 2, "alltoall"},
                                           Scenario{"tiny-deepseek-v2", true, 2, "allgather"},
                                           Scenario{"tiny-deepseek-v2", true, 4, "alltoall"},
                                           Scenario{"tiny-deepseek-v2", true, 4, "allgather"}),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           std::string name = info.param.model + (info.param.distributed_optimizer
                                                                      ? "_distributed_optimizer"
                                                                      : "_adam");
                           if (info.param.expert_parallel > 1)
                             name += "_ep" + std::to_string(info.param.expert_parallel) + "_" + info.param.dispatcher;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace moebench::train
