#include "moebench/train/lr_schedule.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

// tiny-mixtral's schedule: lr 1e-3 to min-lr 1e-4, 5 warmup iterations of 50,
// GBS 16: warmup over 80 samples, decay over 800.
TrainConfig tiny_mixtral(LrDecayStyle style) {
  TrainConfig t;
  t.train_iters = 50;
  t.lr = 1e-3;
  t.min_lr = 1e-4;
  t.lr_warmup_iters = 5;
  t.lr_decay_style = style;
  return t;
}

TEST(TrainLrSchedule, CosineAfterLinearWarmup) {
  const auto schedule = LearningRateSchedule::from_config(tiny_mixtral(LrDecayStyle::Cosine), 16);
  EXPECT_EQ(schedule.warmup_samples(), 80);
  EXPECT_EQ(schedule.decay_samples(), 800);
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), 0.0);     // warmup starts at lr-warmup-init
  EXPECT_DOUBLE_EQ(schedule.lr_at(16), 2e-4);   // 1/5 of the way
  EXPECT_DOUBLE_EQ(schedule.lr_at(80), 1e-3);   // the peak
  // Half-way through the decay, (440 - 80) / 720 = 0.5: cosine gives the mean of lr and min-lr.
  EXPECT_DOUBLE_EQ(schedule.lr_at(440), 5.5e-4);
  // A quarter in, (260 - 80) / 720: 1e-4 + 0.5 (cos(pi/4) + 1) x 9e-4 = 8.6819805153394638e-4.
  EXPECT_NEAR(schedule.lr_at(260), 8.6819805153394638e-4, 1e-18);
  EXPECT_NEAR(schedule.lr_at(800), 1e-4, 1e-18);
  EXPECT_DOUBLE_EQ(schedule.lr_at(10000), 1e-4);  // constant min-lr after the decay
}

TEST(TrainLrSchedule, LinearAndConstantDecay) {
  const auto linear = LearningRateSchedule::from_config(tiny_mixtral(LrDecayStyle::Linear), 16);
  EXPECT_DOUBLE_EQ(linear.lr_at(260), 1e-4 + 0.75 * 9e-4);
  EXPECT_DOUBLE_EQ(linear.lr_at(620), 1e-4 + 0.25 * 9e-4);
  const auto constant = LearningRateSchedule::from_config(tiny_mixtral(LrDecayStyle::Constant), 16);
  EXPECT_DOUBLE_EQ(constant.lr_at(40), 5e-4);  // still warms up
  EXPECT_DOUBLE_EQ(constant.lr_at(10000), 1e-3);
}

TEST(TrainLrSchedule, WarmupInitFractionAndDecayIters) {
  TrainConfig t = tiny_mixtral(LrDecayStyle::Linear);
  t.lr_warmup_init = 1e-4;
  t.lr_decay_iters = 25;  // decay over 400 samples, then min-lr
  auto schedule = LearningRateSchedule::from_config(t, 16);
  EXPECT_DOUBLE_EQ(schedule.lr_at(40), 5.5e-4);
  EXPECT_DOUBLE_EQ(schedule.lr_at(240), 1e-4 + 0.5 * 9e-4);
  EXPECT_DOUBLE_EQ(schedule.lr_at(401), 1e-4);

  t.lr_warmup_iters = 0;
  t.lr_warmup_fraction = 0.1;  // of the 400 decay samples
  EXPECT_EQ(LearningRateSchedule::from_config(t, 16).warmup_samples(), 40);
}

TEST(TrainLrSchedule, SampleBasedRun) {
  TrainConfig t;
  t.train_samples = 1000;
  t.train_iters = 62;
  t.lr = 1.0;
  t.lr_warmup_samples = 100;
  t.lr_decay_style = LrDecayStyle::Linear;
  const auto schedule = LearningRateSchedule::from_config(t, 16);
  EXPECT_EQ(schedule.decay_samples(), 1000);  // the samples, not 62 x 16
  EXPECT_DOUBLE_EQ(schedule.lr_at(50), 0.5);
  EXPECT_DOUBLE_EQ(schedule.lr_at(550), 0.5);
}

TEST(TrainLrSchedule, RejectsWarmupAsLongAsTheDecay) {
  TrainConfig t = tiny_mixtral(LrDecayStyle::Cosine);
  t.lr_warmup_iters = 50;
  try {
    LearningRateSchedule::from_config(t, 16);
    FAIL() << "expected a moebench::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("must be shorter than the decay of 800"));
  }
}

}  // namespace
}  // namespace moebench::train
