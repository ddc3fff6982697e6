#include "moebench/train/adam_optimizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

model::Parameter parameter(const std::string& name, std::vector<float> value, std::vector<float> grad,
                           bool weight_decay = true) {
  model::Parameter p;
  p.name = name;
  const int64_t n = int64_t(value.size());
  p.value = Tensor::from_vector(value, {n});
  p.grad = Tensor::from_vector(grad, {n});
  p.weight_decay = weight_decay;
  return p;
}

float at(const Tensor& t, int64_t i) { return t.data<float>()[i]; }

// Gradients (3, 4) and (0) have global norm 5; clip-grad 1 scales them by
// 1 / (5 + 1e-6). On a first step Adam moves each element by lr x g / (|g| + eps)
// plus lr x weight_decay x p: here lr 0.1, weight decay 0.5.
TEST(TrainAdamOptimizer, ClipsByGlobalNormThenStepsWithDecoupledDecay) {
  model::Parameter weight = parameter("weight", {1.0f, -2.0f}, {3.0f, 4.0f});
  model::Parameter norm = parameter("norm", {1.0f}, {0.0f}, /*weight_decay=*/false);
  AdamOptions options;
  options.weight_decay = 0.5;
  options.clip_grad = 1.0;
  AdamOptimizer optimizer({&weight, &norm}, options);

  const OptimizerStep step = optimizer.step(0.1);
  EXPECT_TRUE(step.applied);
  EXPECT_DOUBLE_EQ(step.grad_norm, 5.0);
  EXPECT_EQ(optimizer.steps_taken(), 1);
  // The step reads the gradients scaled by 1 / 5 and leaves them as they are:
  // m = (1 - beta1) x the clipped gradient.
  EXPECT_EQ(at(weight.grad, 0), 3.0f);
  EXPECT_EQ(at(weight.grad, 1), 4.0f);
  const std::vector<ckpt::ShardedTensor> state = optimizer.state_pieces();
  const auto exp_avg = std::find_if(state.begin(), state.end(), [](const ckpt::ShardedTensor& piece) {
    return piece.name == exp_avg_name("weight");
  });
  ASSERT_NE(exp_avg, state.end());
  EXPECT_NEAR(at(exp_avg->local, 0), 0.1 * 0.6, 1e-7);
  EXPECT_NEAR(at(exp_avg->local, 1), 0.1 * 0.8, 1e-7);
  EXPECT_NEAR(at(weight.value, 0), 1.0 - 0.1 * (1.0 + 0.5 * 1.0), 1e-6);
  EXPECT_NEAR(at(weight.value, 1), -2.0 - 0.1 * (1.0 + 0.5 * -2.0), 1e-6);
  // A zero gradient and no weight decay (a norm, as Megatron): no change at all.
  EXPECT_EQ(at(norm.value, 0), 1.0f);
}

TEST(TrainAdamOptimizer, NoClippingBelowTheThresholdOrWhenTurnedOff) {
  model::Parameter small = parameter("small", {0.0f}, {0.5f});
  AdamOptimizer clipped({&small}, AdamOptions{});
  EXPECT_DOUBLE_EQ(clipped.step(0.1).grad_norm, 0.5);
  EXPECT_EQ(at(small.grad, 0), 0.5f);

  model::Parameter large = parameter("large", {0.0f}, {8.0f});
  AdamOptions options;
  options.clip_grad = 0;
  AdamOptimizer unclipped({&large}, options);
  EXPECT_DOUBLE_EQ(unclipped.step(0.1).grad_norm, 8.0);
  EXPECT_EQ(at(large.grad, 0), 8.0f);
}

// Parameters whose gradient squares are already summed (Parameter::
// grad_squares, shared by a group) count that sum once, not their gradients.
TEST(TrainAdamOptimizer, TheNormTakesKnownGradientSquaresOncePerGroup) {
  model::Parameter read = parameter("read", {0.0f}, {2.0f});
  model::Parameter first = parameter("expert0", {0.0f}, {100.0f});
  model::Parameter second = parameter("expert1", {0.0f}, {100.0f});
  first.grad_squares = second.grad_squares = Tensor::from_vector(std::vector<double>{21.0}, {1});
  AdamOptimizer optimizer({&read, &first, &second}, AdamOptions{});
  EXPECT_DOUBLE_EQ(optimizer.step(0.1).grad_norm, 5.0);  // sqrt(2^2 + 21)
}

TEST(TrainAdamOptimizer, SkipsTheUpdateWhenTheNormIsNotFinite) {
  model::Parameter weight = parameter("weight", {1.0f, 2.0f}, {NAN, 1.0f});
  AdamOptimizer optimizer({&weight}, AdamOptions{});
  OptimizerStep step = optimizer.step(0.1);
  EXPECT_FALSE(step.applied);
  EXPECT_TRUE(std::isnan(step.grad_norm));
  EXPECT_EQ(optimizer.steps_taken(), 0);
  EXPECT_EQ(at(weight.value, 0), 1.0f);
  EXPECT_EQ(at(weight.value, 1), 2.0f);

  weight.grad.data<float>()[0] = INFINITY;
  EXPECT_FALSE(optimizer.step(0.1).applied);

  // Once finite again, the update is Adam's first step (bias correction from step 1).
  weight.grad.data<float>()[0] = 0.0f;
  step = optimizer.step(0.1);
  EXPECT_TRUE(step.applied);
  EXPECT_EQ(optimizer.steps_taken(), 1);
  EXPECT_NEAR(at(weight.value, 1), 2.0 - 0.1, 1e-6);
}

TEST(TrainAdamOptimizer, RejectsParametersItCannotUpdate) {
  model::Parameter no_grad;
  no_grad.name = "decoder.final_layernorm.weight";
  no_grad.value = Tensor::zeros({4}, DType::F32);
  try {
    AdamOptimizer optimizer({&no_grad}, AdamOptions{});
    FAIL() << "expected a moebench::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("'decoder.final_layernorm.weight'"));
  }
}

}  // namespace
}  // namespace moebench::train
