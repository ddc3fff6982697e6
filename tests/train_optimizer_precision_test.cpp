// The precision-aware optimizer's flags: Megatron's names and defaults, the
// dtypes moebench stores Adam's moments in, and a clear error for every other
// value or for a dtype given without --use-precision-aware-optimizer.
#include "moebench/train/optimizer_precision.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/train/train_config.h"

namespace moebench::train {
namespace {

OptimizerPrecision from(const std::vector<std::string>& arguments) {
  return optimizer_precision_from_flags(config::FlagMap::parse_arguments(arguments));
}

std::string error_of(const std::vector<std::string>& arguments) {
  try {
    from(arguments);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TrainOptimizerPrecision, DefaultsAreFp32MomentsOfTwelveBytesWithTheMainWeights) {
  for (const auto& arguments : {std::vector<std::string>{}, {"--use-precision-aware-optimizer"},
                                {"--exp-avg-dtype", "fp32", "--exp-avg-sq-dtype", "fp32", "--main-grads-dtype",
                                 "fp32", "--main-params-dtype", "fp32"}}) {
    const OptimizerPrecision p = from(arguments);
    EXPECT_EQ(p.exp_avg, DType::F32);
    EXPECT_EQ(p.exp_avg_sq, DType::F32);
    EXPECT_EQ(p.state_bytes_per_parameter(), 12.0);
    EXPECT_EQ(p.describe(), "fp32 main, fp32 m, fp32 v");
  }
}

TEST(TrainOptimizerPrecision, EachMomentInBf16) {
  const OptimizerPrecision both =
      from({"--use-precision-aware-optimizer", "--exp-avg-dtype", "bf16", "--exp-avg-sq-dtype", "bf16"});
  EXPECT_EQ(both.exp_avg, DType::BF16);
  EXPECT_EQ(both.exp_avg_sq, DType::BF16);
  EXPECT_EQ(both.state_bytes_per_parameter(), 8.0);
  EXPECT_EQ(both.describe(), "fp32 main, bf16 m, bf16 v");

  const OptimizerPrecision second = from({"--use-precision-aware-optimizer", "--exp-avg-sq-dtype", "bf16"});
  EXPECT_EQ(second.exp_avg, DType::F32);
  EXPECT_EQ(second.exp_avg_sq, DType::BF16);
  EXPECT_EQ(second.state_bytes_per_parameter(), 10.0);
}

TEST(TrainOptimizerPrecision, LowerPrecisionNeedsThePrecisionAwareOptimizer) {
  EXPECT_EQ(error_of({"--exp-avg-dtype", "bf16"}),
            "--exp-avg-dtype bf16 needs --use-precision-aware-optimizer (as in Megatron-LM); add it, or use "
            "--exp-avg-dtype fp32");
  EXPECT_THAT(error_of({"--exp-avg-sq-dtype", "bf16"}), ::testing::HasSubstr("needs --use-precision-aware-optimizer"));
}

TEST(TrainOptimizerPrecision, RejectsWhatIsNotImplementedNamingTheAllowedValues) {
  const std::string aware = "--use-precision-aware-optimizer";
  EXPECT_EQ(error_of({aware, "--exp-avg-dtype", "fp16"}), "--exp-avg-dtype fp16 is not supported yet; use fp32 or bf16");
  EXPECT_EQ(error_of({aware, "--exp-avg-sq-dtype", "fp8"}),
            "--exp-avg-sq-dtype fp8 is not supported yet; use fp32 or bf16");
  EXPECT_EQ(error_of({aware, "--exp-avg-dtype", "fp64"}), "--exp-avg-dtype fp64 is not a valid value; use fp32 or bf16");
  EXPECT_EQ(error_of({aware, "--main-grads-dtype", "bf16"}), "--main-grads-dtype bf16 is not supported yet; use fp32");
  EXPECT_EQ(error_of({aware, "--main-params-dtype", "fp16"}), "--main-params-dtype fp16 is not supported yet; use fp32");
  EXPECT_EQ(error_of({aware, "--main-params-dtype", "bf16"}), "--main-params-dtype bf16 is not a valid value; use fp32");
}

TEST(TrainOptimizerPrecision, TrainConfigCarriesIt) {
  const TrainConfig t =
      train_config_from_flags(config::FlagMap::parse_arguments({"--train-iters", "1", "--lr", "1e-4",
                                                                "--use-precision-aware-optimizer", "--exp-avg-dtype",
                                                                "bf16"}),
                              8);
  EXPECT_EQ(t.optimizer_precision.exp_avg, DType::BF16);
  EXPECT_EQ(t.optimizer_precision.exp_avg_sq, DType::F32);
}

}  // namespace
}  // namespace moebench::train
