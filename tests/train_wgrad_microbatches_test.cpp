// Training with --moe-wgrad-microbatches: tiny-mixtral resolved from the
// repository's configs, trained for a few iterations of 4 micro-batches, logs
// the losses and gradient norms and ends with the weights of N = 1 (the
// trainer flushes what the experts keep before reducing the gradients, also
// when N does not divide the micro-batches); the flag's bad values stop at
// validation with the flag named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/resolve.h"
#include "moebench/config/validation.h"
#include "moebench/core/error.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/model/gpt_model.h"
#include "moebench/train/trainer.h"

namespace moebench::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

config::ResolvedConfig resolved_tiny_mixtral(const std::vector<std::string>& extra_flags,
                                             const std::map<std::string, std::string>& environment = {}) {
  std::vector<std::string> flags = {"--micro-batch-size", "1", "--global-batch-size", "4", "--train-iters", "3",
                                    "--lr-warmup-iters", "1", "--eval-iters", "0"};
  flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
  std::map<std::string, std::string> variables = {{"MODEL", "tiny-mixtral"}, {"CLUSTER", "local"}};
  variables.insert(environment.begin(), environment.end());
  return config::resolve({fs::path(MOEBENCH_SOURCE_DIR) / "configs", variables, flags});
}

struct Outcome {
  std::vector<IterationRecord> records;
  std::vector<Tensor> weights;
};

// Trains on one rank as `moebench run` would, after the same validation.
Outcome train(const std::vector<std::string>& extra_flags) {
  const config::ResolvedConfig resolved = resolved_tiny_mixtral(extra_flags);
  TrainingSetup setup;
  setup.parallel = config::parallel_config_from_flags(resolved.flags, 1);
  setup.train = train_config_from_flags(resolved.flags, setup.parallel.global_batch);
  setup.train.save.clear();
  setup.train.load.clear();
  const config::ModelConfig model = config::model_config_from_flags(resolved.flags, 1);
  config::validate(model, setup.parallel);
  setup.seq_length = model.seq_length;

  dist::SingleRankCommunicator world;
  const dist::ParallelState state(world, {.world_size = 1});
  const uint64_t seed = uint64_t(setup.train.seed);
  model::GPTModel gpt(model, seed);
  TrainableModelRef<model::GPTModel> trainable(gpt);
  const data::MockDataset data(model.seq_length, model.vocab_size, seed, data::Split::Train);
  Outcome outcome;
  Trainer trainer(trainable, setup, state, data, data,
                  {[&outcome](const IterationRecord& r) { outcome.records.push_back(r); }, {}});
  trainer.train();
  for (const model::Parameter* p : gpt.parameters()) outcome.weights.push_back(p->value.clone());
  return outcome;
}

void expect_near_relative(double value, double reference, const std::string& what) {
  EXPECT_NEAR(value, reference, 1e-5 * std::abs(reference)) << what;
}

TEST(WgradMicrobatchesTraining, LogsAndEndsAsOneMicrobatchAtATime) {
  const Outcome reference = train({});
  ASSERT_EQ(reference.records.size(), 3u);
  // 2 divides the 4 micro-batches of a step; 3 leaves one for the trainer's flush.
  for (const std::string n : {"2", "3"}) {
    const Outcome batched = train({"--moe-wgrad-microbatches", n});
    ASSERT_EQ(batched.records.size(), reference.records.size()) << "N " << n;
    for (size_t i = 0; i < batched.records.size(); ++i) {
      const std::string at = "iteration " + std::to_string(i + 1) + " with N " + n;
      EXPECT_FALSE(batched.records[i].skipped) << at;
      expect_near_relative(batched.records[i].lm_loss, reference.records[i].lm_loss, "lm loss, " + at);
      expect_near_relative(batched.records[i].load_balancing_loss, reference.records[i].load_balancing_loss,
                           "load-balancing loss, " + at);
      expect_near_relative(batched.records[i].grad_norm, reference.records[i].grad_norm, "grad norm, " + at);
    }
    ASSERT_EQ(batched.weights.size(), reference.weights.size());
    for (size_t p = 0; p < batched.weights.size(); ++p) {
      const float* got = batched.weights[p].data<float>();
      const float* want = reference.weights[p].data<float>();
      float largest = 0, difference = 0;
      for (int64_t i = 0; i < batched.weights[p].numel(); ++i) {
        largest = std::max(largest, std::abs(want[i]));
        difference = std::max(difference, std::abs(got[i] - want[i]));
      }
      EXPECT_LE(difference, 1e-5f * largest) << "weight " << p << " with N " << n;
    }
  }
}

std::string validation_error(const std::vector<std::string>& extra_flags,
                             const std::map<std::string, std::string>& environment = {}) {
  const config::ResolvedConfig resolved = resolved_tiny_mixtral(extra_flags, environment);
  const config::ParallelConfig parallel = config::parallel_config_from_flags(resolved.flags, 1);
  try {
    config::validate(config::model_config_from_flags(resolved.flags, 1), parallel);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WgradMicrobatchesTraining, BadFlagValuesStopAtValidation) {
  EXPECT_THAT(validation_error({"--moe-wgrad-microbatches", "0"}),
              HasSubstr("--moe-wgrad-microbatches 0 must be at least 1"));
  EXPECT_THAT(validation_error({"--moe-wgrad-microbatches", "-1"}),
              HasSubstr("--moe-wgrad-microbatches -1 must be at least 1"));
  // MOE_GROUPED_GEMM=false drops --moe-grouped-gemm: the per-expert loop.
  EXPECT_THAT(validation_error({"--moe-wgrad-microbatches", "2"}, {{"MOE_GROUPED_GEMM", "false"}}),
              HasSubstr("--moe-wgrad-microbatches 2 batches the weight gradients of the grouped experts only; add "
                        "--moe-grouped-gemm"));
  EXPECT_EQ(validation_error({"--moe-wgrad-microbatches", "2"}), "");
}

}  // namespace
}  // namespace moebench::train
