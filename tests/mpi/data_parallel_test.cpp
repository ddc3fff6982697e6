// Data and expert parallelism are exact: the ranks of the test world, each
// training on its share of every global batch, log the losses and gradient
// norms and end with the weights of one rank training on the whole global
// batch, with the plain Adam optimizer and with the distributed optimizer,
// for zoo models. With EP > 1 (folded into DP) each rank holds its ep rank's
// experts only, which must equal the one-rank run's experts of those names.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "moebench/dist/single_rank_communicator.h"
#include "mpi_test_world.h"
#include "zoo_training.h"

namespace moebench::train {
namespace {

class DataParallelTraining : public ::testing::TestWithParam<ZooRun> {};

int64_t expert_count(const ZooOutcome& outcome) {
  return std::ranges::count_if(outcome.weights, [](const model::Parameter& p) { return p.is_expert; });
}

TEST_P(DataParallelTraining, MatchesOneRankOnTheSameGlobalBatch) {
  dist::Communicator& world = dist::test_world();
  if (world.size() % GetParam().expert_parallel != 0)
    GTEST_SKIP() << "EP=" << GetParam().expert_parallel << " needs a multiple of its ranks";
  const ZooOutcome parallel = train_zoo_model(world, GetParam());
  dist::SingleRankCommunicator one_rank;
  const ZooOutcome reference = train_zoo_model(one_rank, GetParam().one_rank());

  const ZooDifferences worst = expect_matches_one_rank(parallel, reference);
  // The ep ranks together hold every expert; every rank holds every dense parameter.
  const int64_t experts = expert_count(parallel), reference_experts = expert_count(reference);
  EXPECT_EQ(experts * GetParam().expert_parallel, reference_experts);
  EXPECT_EQ(int64_t(parallel.weights.size()) - experts, int64_t(reference.weights.size()) - reference_experts);
  if (world.rank() == 0)
    std::printf("[ info ] %d ranks (EP=%d) vs 1: largest relative difference of losses %.2e, grad norms %.2e, weights %.2e\n",
                world.size(), GetParam().expert_parallel, worst.loss, worst.grad_norm, worst.weight);
}

ZooRun run(const std::string& model, bool distributed_optimizer, int expert_parallel = 1,
           const std::string& dispatcher = "") {
  return {.model = model,
          .distributed_optimizer = distributed_optimizer,
          .expert_parallel = expert_parallel,
          .dispatcher = dispatcher};
}

INSTANTIATE_TEST_SUITE_P(ZooModels, DataParallelTraining,
                         ::testing::Values(run("tiny-mixtral", false), run("tiny-mixtral", true),
                                           run("tiny-deepseek-v2", false), run("tiny-deepseek-v2", true),
                                           // Aux-loss-free routing: expert biases move by the counts of all ranks.
                                           run("tiny-deepseek-v3", true),
                                           // Expert parallelism: EP2 (x expert-DP2 on 4 ranks) and EP4,
                                           // for both EP dispatchers; tiny-deepseek-v2 adds shared
                                           // experts and a dense first layer.
                                           run("tiny-mixtral", true, 2, "alltoall"),
                                           run("tiny-mixtral", true, 2, "allgather"),
                                           run("tiny-mixtral", true, 4, "alltoall"),
                                           run("tiny-mixtral", true, 4, "allgather"),
                                           run("tiny-deepseek-v2", true, 2, "alltoall"),
                                           run("tiny-deepseek-v2", true, 2, "allgather"),
                                           run("tiny-deepseek-v2", true, 4, "alltoall"),
                                           run("tiny-deepseek-v2", true, 4, "allgather"),
                                           // Plain Adam adds the other ep ranks' experts to its norm.
                                           run("tiny-mixtral", false, 2, "alltoall")),
                         [](const ::testing::TestParamInfo<ZooRun>& info) {
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
