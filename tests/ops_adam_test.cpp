#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/adam.h"

namespace moebench::ops::cpu {
namespace {

// Two steps by hand, lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1.
// Element 0 starts at p = 1 with gradients 0.5 then -0.25:
//   step 1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25,
//           update = 0.5 / (0.5 + 1e-8) = 0.99999998,
//           p = 1 - 0.1 * (0.99999998 + 0.1 * 1) = 0.890000002
//   step 2: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225,
//           m_hat = 0.02 / 0.19, v_hat = 0.00031225 / 0.001999,
//           update = m_hat / (sqrt(v_hat) + 1e-8) = 0.26633703292153604,
//           p = 0.890000002 - 0.1 * (update + 0.1 * 0.890000002) = 0.8544662986878464
// Element 1 starts at p = 2 with zero gradients: only the decay moves it,
//   p = 2 * (1 - 0.1 * 0.1)^2 = 1.9602.
template <typename T>
void expect_two_hand_computed_steps(double tolerance) {
  AdamHyperparams hyperparams;
  hyperparams.lr = 0.1;
  hyperparams.weight_decay = 0.1;
  std::vector<T> param = {1, 2};
  std::vector<T> exp_avg(2, T(0));
  std::vector<T> exp_avg_sq(2, T(0));

  const std::vector<T> grad1 = {T(0.5), T(0)};
  adamw_step(param.data(), exp_avg.data(), exp_avg_sq.data(), grad1.data(), 2, 1, hyperparams);
  EXPECT_NEAR(param[0], 0.890000002, tolerance);
  EXPECT_NEAR(exp_avg[0], 0.05, tolerance);
  EXPECT_NEAR(exp_avg_sq[0], 0.00025, tolerance);

  const std::vector<T> grad2 = {T(-0.25), T(0)};
  adamw_step(param.data(), exp_avg.data(), exp_avg_sq.data(), grad2.data(), 2, 2, hyperparams);
  EXPECT_NEAR(param[0], 0.8544662986878464, tolerance);
  EXPECT_NEAR(exp_avg[0], 0.02, tolerance);
  EXPECT_NEAR(exp_avg_sq[0], 0.00031225, tolerance);
  EXPECT_NEAR(param[1], 1.9602, tolerance);
  EXPECT_EQ(exp_avg[1], T(0));
  EXPECT_EQ(exp_avg_sq[1], T(0));
}

TEST(OpsAdam, TwoHandComputedStepsInDouble) { expect_two_hand_computed_steps<double>(1e-14); }

TEST(OpsAdam, TwoHandComputedStepsInFloat) { expect_two_hand_computed_steps<float>(1e-6); }

TEST(OpsAdam, StepsCountFromOne) {
  AdamHyperparams hyperparams;
  hyperparams.lr = 0.1;
  float param = 1, exp_avg = 0, exp_avg_sq = 0, grad = 1;
  EXPECT_THROW(adamw_step(&param, &exp_avg, &exp_avg_sq, &grad, 1, 0, hyperparams), Error);
}

}  // namespace
}  // namespace moebench::ops::cpu
