#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/core/tensor.h"
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

// bf16 moments round to the nearest bf16, ties to even. With beta1 = beta2 = 0.5
// the new moments are exact in float and double and land on ties:
//   m = 0.5 * 0 + 0.5 * g:  g = 2 + 2^-7 gives 1 + 2^-8, halfway between 1 and
//   1 + 2^-7 (the next bf16): even is 1; g = 2 + 3 * 2^-7 gives 1 + 3 * 2^-8,
//   halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
//   v = 0.5 * v + 0.5 * 1^2:  v = 1 + 2^-7 gives 1 + 2^-8 -> 1;
//   v = 1 + 3 * 2^-7 gives 1 + 3 * 2^-8 -> 1 + 2^-6.
// Truncation would give 1 + 2^-7 for the second of each pair, rounding half up
// 1 + 2^-7 for the first.
template <typename T>
void expect_ties_to_even() {
  AdamHyperparams hyperparams;
  hyperparams.lr = 0.01;
  hyperparams.beta1 = 0.5;
  hyperparams.beta2 = 0.5;
  std::vector<T> param = {1, 1};
  std::vector<bfloat16> exp_avg = {bfloat16(0.0f), bfloat16(0.0f)};
  const std::vector<T> grad_m = {T(2 + std::ldexp(1.0, -7)), T(2 + 3 * std::ldexp(1.0, -7))};
  std::vector<T> unused_v(2, T(0));
  adamw_step(param.data(), exp_avg.data(), unused_v.data(), grad_m.data(), 2, 1, hyperparams);
  EXPECT_EQ(float(exp_avg[0]), 1.0f);
  EXPECT_EQ(float(exp_avg[1]), 1.0f + std::ldexp(1.0f, -6));

  std::vector<T> unused_m(2, T(0));
  std::vector<bfloat16> exp_avg_sq = {bfloat16(1.0f + std::ldexp(1.0f, -7)), bfloat16(1.0f + 3 * std::ldexp(1.0f, -7))};
  const std::vector<T> grad_v = {T(1), T(1)};
  adamw_step(param.data(), unused_m.data(), exp_avg_sq.data(), grad_v.data(), 2, 1, hyperparams);
  EXPECT_EQ(float(exp_avg_sq[0]), 1.0f);
  EXPECT_EQ(float(exp_avg_sq[1]), 1.0f + std::ldexp(1.0f, -6));
}

TEST(OpsAdam, Bf16MomentsRoundTiesToEvenInFloat) { expect_ties_to_even<float>(); }

TEST(OpsAdam, Bf16MomentsRoundTiesToEvenInDouble) { expect_ties_to_even<double>(); }

// Distance in bf16 steps between two finite bf16 values of one sign.
int bf16_steps_apart(bfloat16 a, bfloat16 b) { return std::abs(int(a.bits) - int(b.bits)); }

// The float step with bf16 moments against the double reference that rounds
// its moments to bf16 (directly from double), from the same state at each of
// three steps (the state is carried over from the float run, so a difference
// does not compound). The new moment is rounded after the update uses it, so
// the main weights agree to float rounding (bound 2e-7 relative); the moments
// round the float and the double value of the same formula, which differ by a
// few float ulps of the formula's terms: they agree bit for bit except where
// such a value falls next to a rounding boundary, rarely. Bounds: v (a sum of
// two non-negative terms) within one bf16 step; m within one bf16 step
// (2^-7 relative) plus 2^-20 of its terms' magnitude |beta1 m| + |(1 - beta1) g|,
// since the terms may cancel; at most 0.1% of all moments not identical.
TEST(OpsAdam, Bf16MomentsMatchDoubleReferenceRoundedTheSameWay) {
  constexpr int64_t n = 20000;
  AdamHyperparams hyperparams;
  hyperparams.lr = 3e-3;
  hyperparams.beta2 = 0.95;
  hyperparams.weight_decay = 0.1;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> param(n);
  std::vector<bfloat16> exp_avg(n), exp_avg_sq(n);
  for (int64_t i = 0; i < n; ++i) {
    param[i] = uniform(rng);
    exp_avg[i] = bfloat16(0.01f * uniform(rng));
    exp_avg_sq[i] = bfloat16(1e-4f * (0.25f + std::abs(uniform(rng))));  // sqrt(v) >= |m| / 2: bounded updates
  }
  int64_t moments_not_identical = 0;
  for (int64_t step = 1; step <= 3; ++step) {
    std::vector<float> grad(n);
    for (float& g : grad) g = 0.1f * uniform(rng);
    std::vector<double> param_d(param.begin(), param.end()), grad_d(grad.begin(), grad.end());
    std::vector<bfloat16> exp_avg_d = exp_avg, exp_avg_sq_d = exp_avg_sq;
    std::vector<double> m_terms(n);
    for (int64_t i = 0; i < n; ++i)
      m_terms[i] = std::abs(hyperparams.beta1 * exp_avg[i]) + std::abs((1 - hyperparams.beta1) * grad[i]);
    adamw_step(param.data(), exp_avg.data(), exp_avg_sq.data(), grad.data(), n, step, hyperparams);
    adamw_step(param_d.data(), exp_avg_d.data(), exp_avg_sq_d.data(), grad_d.data(), n, step, hyperparams);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(param[i], param_d[i], 2e-7 * (1 + std::abs(param_d[i]))) << "step " << step << " element " << i;
      const double m_want = exp_avg_d[i];
      ASSERT_NEAR(exp_avg[i], m_want, std::ldexp(std::abs(m_want), -7) + std::ldexp(m_terms[i], -20))
          << "step " << step << " element " << i;
      ASSERT_LE(bf16_steps_apart(exp_avg_sq[i], exp_avg_sq_d[i]), 1) << "step " << step << " element " << i;
      moments_not_identical += (exp_avg[i].bits != exp_avg_d[i].bits) + (exp_avg_sq[i].bits != exp_avg_sq_d[i].bits);
    }
  }
  EXPECT_LE(moments_not_identical, 2 * 3 * n / 1000);
}

}  // namespace
}  // namespace moebench::ops::cpu

namespace moebench::ops {
namespace {

// The Tensor-level step dispatches on each moment's dtype to the typed reference.
TEST(OpsAdam, TensorStepTakesEachMomentInF32OrBf16) {
  AdamHyperparams hyperparams;
  hyperparams.lr = 0.1;
  const std::vector<float> start = {1.0f, -2.0f, 0.5f};
  const std::vector<float> gradient = {0.3f, -0.7f, 0.01f};
  Tensor param = Tensor::from_vector(start);
  Tensor exp_avg = Tensor::zeros({3}, DType::BF16);
  Tensor exp_avg_sq = Tensor::zeros({3}, DType::F32);
  const Tensor grad = Tensor::from_vector(gradient);
  adamw_step(param, exp_avg, exp_avg_sq, grad, 1, hyperparams);

  std::vector<float> want_param = start, want_exp_avg_sq(3, 0.0f);
  std::vector<bfloat16> want_exp_avg(3, bfloat16(0.0f));
  cpu::adamw_step(want_param.data(), want_exp_avg.data(), want_exp_avg_sq.data(), gradient.data(), 3, 1, hyperparams);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(param.data<float>()[i], want_param[size_t(i)]);
    EXPECT_EQ(exp_avg.data<bfloat16>()[i].bits, want_exp_avg[size_t(i)].bits);
    EXPECT_EQ(exp_avg_sq.data<float>()[i], want_exp_avg_sq[size_t(i)]);
  }

  Tensor f16_moment = Tensor::zeros({3}, DType::F16);
  EXPECT_THROW(adamw_step(param, f16_moment, exp_avg_sq, grad, 2, hyperparams), Error);
}

}  // namespace
}  // namespace moebench::ops
