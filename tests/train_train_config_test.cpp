#include "moebench/train/train_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

TrainConfig from(const std::vector<std::string>& arguments, long long global_batch = 16) {
  return train_config_from_flags(config::FlagMap::parse_arguments(arguments), global_batch);
}

void expect_error(const std::vector<std::string>& arguments, const std::string& message) {
  try {
    from(arguments);
    FAIL() << "expected a moebench::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr(message));
  }
}

TEST(TrainTrainConfig, MegatronDefaults) {
  const TrainConfig t = from({"--train-iters", "10", "--lr", "3e-4"});
  EXPECT_EQ(t.train_iters, 10);
  EXPECT_EQ(t.train_samples, 0);
  EXPECT_EQ(t.lr, 3e-4);
  EXPECT_EQ(t.min_lr, 0.0);
  EXPECT_EQ(t.lr_decay_style, LrDecayStyle::Linear);
  EXPECT_EQ(t.lr_warmup_init, 0.0);
  EXPECT_LT(t.lr_warmup_fraction, 0.0);
  EXPECT_EQ(t.weight_decay, 0.01);
  EXPECT_EQ(t.adam_beta1, 0.9);
  EXPECT_EQ(t.adam_beta2, 0.999);
  EXPECT_EQ(t.adam_eps, 1e-8);
  EXPECT_EQ(t.clip_grad, 1.0);
  EXPECT_EQ(t.seed, 1234);
  EXPECT_EQ(t.log_interval, 100);
  EXPECT_EQ(t.eval_interval, 1000);
  EXPECT_EQ(t.eval_iters, 100);
  EXPECT_EQ(t.exit_duration_in_mins, 0.0);
  EXPECT_TRUE(t.check_for_nan);
  EXPECT_FALSE(t.mock_data);
  EXPECT_FALSE(t.profile);
  EXPECT_EQ(t.profile_step_start, 10);
  EXPECT_EQ(t.profile_step_end, 12);
  EXPECT_EQ(t.profile_ranks, std::vector<int>{0});
  EXPECT_TRUE(t.profile_trace.empty());
}

TEST(TrainTrainConfig, ReadsEveryFlag) {
  const TrainConfig t =
      from({"--train-samples", "1000", "--lr", "1e-3", "--min-lr", "1e-5", "--lr-decay-style", "cosine",
            "--lr-warmup-samples", "64", "--lr-warmup-init", "1e-6", "--lr-decay-samples", "900", "--weight-decay",
            "0.1", "--adam-beta1", "0.8", "--adam-beta2", "0.95", "--adam-eps", "1e-6", "--clip-grad", "0.5",
            "--seed", "42", "--log-interval", "2", "--eval-interval", "20", "--eval-iters", "3",
            "--exit-duration-in-mins", "30", "--output-dir", "/tmp/run", "--tensorboard-dir", "/tmp/tb",
            "--no-check-for-nan-in-loss-and-grad", "--mock-data", "--profile", "--profile-step-start", "3",
            "--profile-step-end", "3", "--profile-ranks", "0", "2", "--profile-trace", "/tmp/trace.json"});
  EXPECT_EQ(t.train_samples, 1000);
  EXPECT_EQ(t.train_iters, 62);  // 1000 / 16, rounded down as Megatron
  EXPECT_EQ(t.min_lr, 1e-5);
  EXPECT_EQ(t.lr_decay_style, LrDecayStyle::Cosine);
  EXPECT_EQ(t.lr_warmup_samples, 64);
  EXPECT_EQ(t.lr_warmup_init, 1e-6);
  EXPECT_EQ(t.lr_decay_samples, 900);
  EXPECT_EQ(t.weight_decay, 0.1);
  EXPECT_EQ(t.adam_beta1, 0.8);
  EXPECT_EQ(t.adam_beta2, 0.95);
  EXPECT_EQ(t.adam_eps, 1e-6);
  EXPECT_EQ(t.clip_grad, 0.5);
  EXPECT_EQ(t.seed, 42);
  EXPECT_EQ(t.log_interval, 2);
  EXPECT_EQ(t.eval_interval, 20);
  EXPECT_EQ(t.eval_iters, 3);
  EXPECT_EQ(t.exit_duration_in_mins, 30.0);
  EXPECT_EQ(t.output_dir, "/tmp/run");
  EXPECT_EQ(t.tensorboard_dir, "/tmp/tb");
  EXPECT_FALSE(t.check_for_nan);
  EXPECT_TRUE(t.mock_data);
  EXPECT_TRUE(t.profile);
  EXPECT_EQ(t.profile_step_start, 3);
  EXPECT_EQ(t.profile_step_end, 3);
  EXPECT_EQ(t.profile_ranks, (std::vector<int>{0, 2}));
  EXPECT_EQ(t.profile_trace, "/tmp/trace.json");
}

TEST(TrainTrainConfig, RejectsMissingAndConflictingFlags) {
  expect_error({"--lr", "1e-3"}, "give the training length: --train-iters or --train-samples");
  expect_error({"--train-iters", "5", "--train-samples", "80", "--lr", "1"}, "only one of --train-iters and --train-samples");
  expect_error({"--train-iters", "5"}, "--lr is not set");
  expect_error({"--train-iters", "5", "--lr", "1", "--lr-warmup-samples", "3"}, "go with --train-samples");
  expect_error({"--train-samples", "80", "--lr", "1", "--lr-decay-iters", "3"}, "go with --train-iters");
  expect_error({"--train-iters", "5", "--lr", "1", "--lr-warmup-fraction", "0.1", "--lr-warmup-iters", "1"},
               "only one of --lr-warmup-fraction");
  expect_error({"--train-iters", "5", "--lr", "1", "--lr-decay-style", "WSD"}, "use constant, linear or cosine");
  expect_error({"--train-iters", "5", "--lr", "1", "--min-lr", "2"}, "--min-lr <= --lr");
  expect_error({"--train-samples", "8", "--lr", "1"}, "less than one global batch of 16");
  expect_error({"--train-iters", "5", "--lr", "1", "--optimizer", "sgd"}, "moebench trains with adam");
  expect_error({"--train-iters", "5", "--lr", "1", "--profile-step-start", "4", "--profile-step-end", "3"},
               "--profile-step-end must not come before --profile-step-start");
  expect_error({"--train-iters", "5", "--lr", "1", "--profile-ranks", "one"}, "--profile-ranks takes rank numbers");
}

}  // namespace
}  // namespace moebench::train
