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
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/model/gpt_model.h"
#include "moebench/train/trainer.h"
#include "mpi_test_world.h"

namespace moebench::train {
namespace {

constexpr int kIterations = 3;
constexpr double kTolerance = 1e-5;  // relative, float32

struct Scenario {
  std::string model;
  bool distributed_optimizer = false;
  int expert_parallel = 1;   // EP of the parallel run; the reference always has EP 1
  std::string dispatcher;    // --moe-token-dispatcher-type; empty: the model's own
};

struct Outcome {
  std::vector<IterationRecord> records;
  std::vector<model::Parameter> weights;  // names and final values, copied
};

struct Run {
  config::ModelConfig model;
  TrainingSetup setup;
};

// The zoo model with its repository configuration, shortened: MBS 1, GBS 8
// (so 4 ranks still run 2 microbatches each), a warmup shorter than the run,
// no evaluation, and small gradient buckets so that every buffer is reduced
// in several collectives.
Run configured_run(const Scenario& scenario, int world_size, int expert_parallel) {
  config::Variables variables = {
      {"MODEL", scenario.model}, {"CLUSTER", "local"}, {"EP", std::to_string(expert_parallel)}};
  if (!scenario.dispatcher.empty()) variables["MOE_TOKEN_DISPATCHER"] = scenario.dispatcher;
  config::ResolvedConfig resolved =
      config::resolve({std::filesystem::path(MOEBENCH_SOURCE_DIR) / "configs", variables,
                       {"--micro-batch-size", "1", "--global-batch-size", "8", "--train-iters",
                        std::to_string(kIterations), "--lr-warmup-iters", "1", "--eval-iters", "0",
                        "--ddp-bucket-size", "20000"}});
  // Every rank also trains the one-rank reference: no checkpoints, or they would share a directory.
  resolved.flags.erase("--save");
  Run run;
  run.setup.parallel = config::parallel_config_from_flags(resolved.flags, world_size);
  run.setup.parallel.distributed_optimizer = scenario.distributed_optimizer;
  run.setup.train = train_config_from_flags(resolved.flags, run.setup.parallel.global_batch);
  run.model = config::model_config_from_flags(resolved.flags, run.setup.parallel.tensor);
  run.setup.seq_length = run.model.seq_length;
  return run;
}

Outcome train_on(dist::Communicator& world, const Scenario& scenario) {
  const int expert_parallel = world.size() == 1 ? 1 : scenario.expert_parallel;
  const Run run = configured_run(scenario, world.size(), expert_parallel);
  const dist::ParallelState state(world, {.world_size = world.size(), .expert = expert_parallel});
  const uint64_t seed = uint64_t(run.setup.train.seed);
  model::GPTModel gpt(run.model, seed, model::ModelConventions{}, model::ModelPlacement::cpu(), state);
  TrainableModelRef<model::GPTModel> trainable(gpt);
  const data::MockDataset train_data(run.model.seq_length, run.model.vocab_size, seed, data::Split::Train);
  const data::MockDataset validation_data(run.model.seq_length, run.model.vocab_size, seed,
                                          data::Split::Validation);
  Outcome outcome;
  Trainer trainer(trainable, run.setup, state, train_data, validation_data,
                  {[&outcome](const IterationRecord& r) { outcome.records.push_back(r); }, {}});
  trainer.train();
  for (const model::Parameter* p : gpt.parameters())
    outcome.weights.push_back({p->name, p->value.clone(), Tensor(), Tensor(), p->weight_decay, p->is_expert});
  return outcome;
}

double relative_difference(double value, double reference) {
  return std::abs(value - reference) / std::max(std::abs(reference), 1e-30);
}

// Largest |value - reference| over the parameter, relative to its largest
// reference magnitude: Adam moves every element by about lr, so an
// element-wise ratio would judge elements that sit near zero too harshly.
double relative_difference(const Tensor& value, const Tensor& reference) {
  const float* v = value.data<float>();
  const float* r = reference.data<float>();
  double difference = 0, magnitude = 0;
  for (int64_t i = 0; i < value.numel(); ++i) {
    difference = std::max(difference, std::abs(double(v[i]) - double(r[i])));
    magnitude = std::max(magnitude, std::abs(double(r[i])));
  }
  return difference / std::max(magnitude, 1e-30);
}

class DataParallelTraining : public ::testing::TestWithParam<Scenario> {};

TEST_P(DataParallelTraining, MatchesOneRankOnTheSameGlobalBatch) {
  dist::Communicator& world = dist::test_world();
  if (world.size() % GetParam().expert_parallel != 0)
    GTEST_SKIP() << "EP=" << GetParam().expert_parallel << " needs a multiple of its ranks";
  const Outcome parallel = train_on(world, GetParam());
  dist::SingleRankCommunicator one_rank;
  const Outcome reference = train_on(one_rank, GetParam());

  ASSERT_EQ(parallel.records.size(), size_t(kIterations));
  ASSERT_EQ(reference.records.size(), size_t(kIterations));
  double worst_loss = 0, worst_norm = 0, worst_weight = 0;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i + 1));
    const IterationRecord& got = parallel.records[size_t(i)];
    const IterationRecord& want = reference.records[size_t(i)];
    EXPECT_FALSE(got.skipped);
    worst_loss = std::max({worst_loss, relative_difference(got.lm_loss, want.lm_loss),
                           relative_difference(got.load_balancing_loss, want.load_balancing_loss)});
    worst_norm = std::max(worst_norm, relative_difference(got.grad_norm, want.grad_norm));
    EXPECT_LT(relative_difference(got.lm_loss, want.lm_loss), kTolerance) << got.lm_loss << " vs " << want.lm_loss;
    EXPECT_LT(relative_difference(got.load_balancing_loss, want.load_balancing_loss), kTolerance)
        << got.load_balancing_loss << " vs " << want.load_balancing_loss;
    EXPECT_LT(relative_difference(got.grad_norm, want.grad_norm), kTolerance)
        << got.grad_norm << " vs " << want.grad_norm;
  }
  // Each rank's parameters, its local experts included, against the one-rank
  // parameters of the same names; the ep ranks together hold every expert.
  int64_t expert_weights = 0, reference_expert_weights = 0;
  for (const model::Parameter& p : reference.weights) reference_expert_weights += p.is_expert;
  size_t next = 0;
  for (const model::Parameter& got : parallel.weights) {
    while (next < reference.weights.size() && reference.weights[next].name != got.name) ++next;
    ASSERT_LT(next, reference.weights.size()) << got.name << " is not a one-rank parameter (or out of order)";
    expert_weights += got.is_expert;
    const double difference = relative_difference(got.value, reference.weights[next].value);
    worst_weight = std::max(worst_weight, difference);
    EXPECT_LT(difference, kTolerance) << got.name;
  }
  EXPECT_EQ(expert_weights * GetParam().expert_parallel, reference_expert_weights);
  EXPECT_EQ(parallel.weights.size() - size_t(expert_weights),
            reference.weights.size() - size_t(reference_expert_weights));
  if (world.rank() == 0)
    std::printf("[ info ] %d ranks (EP=%d) vs 1: largest relative difference of losses %.2e, grad norms %.2e, weights %.2e\n",
                world.size(), GetParam().expert_parallel, worst_loss, worst_norm, worst_weight);
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
