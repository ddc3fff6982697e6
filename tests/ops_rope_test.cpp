#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/rope.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

// rope_scaling of shared/fixtures/hf/tiny-deepseek-v2*/config.json.
YarnScaling deepseek_fixture_yarn() {
  return YarnScaling{.factor = 40.0,
                     .original_max_positions = 64,
                     .beta_fast = 32.0,
                     .beta_slow = 1.0,
                     .mscale = 0.707,
                     .mscale_all_dim = 0.707};
}

TEST(OpsRope, YarnTableMatchesHandComputedDeepSeekValues) {
  // qk_rope_head_dim 8, rope_theta 1e4. Correction dims d(r) = 8 ln(64 / (2 pi r)) / (2 ln 1e4):
  // d(32) = -0.497 -> floor -1 -> clamp 0 = low; d(1) = 1.008 -> ceil 2 = high. The ramp over
  // i = 0..3 is (i - 0) / 2 clamped: 0, 0.5, 1, 1, i.e. frequency 0 kept, 1 half-interpolated,
  // 2 and 3 divided by the factor 40. Original frequencies: 1e4^(-i/4) = 1, 0.1, 0.01, 0.001.
  const double inv_freq[4] = {1.0, 0.5 * 0.1 + 0.5 * 0.1 / 40.0, 0.01 / 40.0, 0.001 / 40.0};
  // mscale == mscale_all_dim, so the attention factor is 1.
  const RopeTable<double> table(8, 10000.0, 6, 1.0, deepseek_fixture_yarn());
  ASSERT_EQ(table.rot_dim, 8);
  for (const int position : {1, 5}) {
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(table.cos[position * 4 + i], std::cos(position * inv_freq[i]), 1e-15);
      EXPECT_NEAR(table.sin[position * 4 + i], std::sin(position * inv_freq[i]), 1e-15);
    }
  }
  EXPECT_NEAR(table.sin[5 * 4 + 1], std::sin(0.25625), 1e-15);
}

TEST(OpsRope, YarnMagnitudeFactorsFollowDeepSeekMscale) {
  const double mscale_0707 = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_DOUBLE_EQ(yarn_mscale(40.0, 0.707), mscale_0707);
  EXPECT_DOUBLE_EQ(yarn_mscale(1.0, 0.707), 1.0);
  EXPECT_DOUBLE_EQ(yarn_attention_factor(deepseek_fixture_yarn()), 1.0);
  // MLA softmax scale: 1/sqrt(qk_head_dim 24) * mscale^2.
  EXPECT_DOUBLE_EQ(mla_softmax_scale(24, deepseek_fixture_yarn()),
                   mscale_0707 * mscale_0707 / std::sqrt(24.0));
  EXPECT_DOUBLE_EQ(mla_softmax_scale(24, std::nullopt), 1.0 / std::sqrt(24.0));

  // With mscale 1 the cos and sin carry mscale(40, 1) / mscale(40, 0.707).
  YarnScaling yarn = deepseek_fixture_yarn();
  yarn.mscale = 1.0;
  const double factor = (0.1 * std::log(40.0) + 1.0) / mscale_0707;
  EXPECT_DOUBLE_EQ(yarn_attention_factor(yarn), factor);
  const RopeTable<double> table(8, 10000.0, 2, 1.0, yarn);
  EXPECT_NEAR(table.cos[4], std::cos(1.0) * factor, 1e-15);
  // HF ignores mscale when mscale_all_dim is absent.
  yarn.mscale_all_dim = 0.0;
  EXPECT_DOUBLE_EQ(yarn_attention_factor(yarn), 0.1 * std::log(40.0) + 1.0);
}

TEST(OpsRope, PlainTableUsesTheRotaryDimForFrequencies) {
  // head_dim 16 at rotary_percent 0.5: rot_dim 8, inv_freq[i] = theta^(-2i/8).
  const RopeTable<float> table(16, 1e6, 4, 0.5);
  ASSERT_EQ(table.rot_dim, 8);
  ASSERT_EQ(table.cos.size(), 16u);
  EXPECT_FLOAT_EQ(table.cos[0], 1.0f);
  EXPECT_FLOAT_EQ(table.sin[0], 0.0f);
  EXPECT_FLOAT_EQ(table.cos[3 * 4 + 1], static_cast<float>(std::cos(3.0 * std::pow(1e6, -0.25))));
  EXPECT_FLOAT_EQ(table.sin[2 * 4 + 3], static_cast<float>(std::sin(2.0 * std::pow(1e6, -0.75))));
}

// One pair turned a quarter (cos 0, sin 1), the other left alone (cos 1, sin 0).
RopeTable<double> quarter_turn_table() {
  RopeTable<double> table(8, 10000.0, 1, 0.5);
  table.cos = {0.0, 1.0};
  table.sin = {1.0, 0.0};
  return table;
}

TEST(OpsRope, HalfLayoutRotatesPairsHalfARotaryDimApart) {
  const RopeTable<double> table = quarter_turn_table();
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::int64_t position = 0;
  std::vector<double> out(8);
  rope_forward(out.data(), x.data(), table, &position, 1, 1, 8, RopeLayout::kHalf);
  // Pair (x0, x2) = (1, 3) turns to (-3, 1); pair (x1, x3) stays; channels 4.. pass through.
  EXPECT_EQ(out, (std::vector<double>{-3, 2, 1, 4, 5, 6, 7, 8}));
}

TEST(OpsRope, InterleavedLayoutRotatesAdjacentPairsIntoHalfOrder) {
  const RopeTable<double> table = quarter_turn_table();
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::int64_t position = 0;
  std::vector<double> out(8);
  rope_forward(out.data(), x.data(), table, &position, 1, 1, 8, RopeLayout::kInterleaved);
  // HF permutes (1, 2, 3, 4) to (1, 3, 2, 4), then rotate_half with cos (0, 1, 0, 1) and
  // sin (1, 0, 1, 0): (1*0 - 2*1, 3*1 - 4*0, 2*0 + 1*1, 4*1 + 3*0) = (-2, 3, 1, 4).
  EXPECT_EQ(out, (std::vector<double>{-2, 3, 1, 4, 5, 6, 7, 8}));
}

// HF's formula spelled out: x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), on the
// first rot_dim channels, after HF DeepSeek's de-interleaving permutation if asked.
std::vector<double> hf_rope(const std::vector<double>& x, const RopeTable<double>& table,
                            const std::vector<std::int64_t>& positions, std::int64_t heads,
                            std::int64_t head_dim, RopeLayout layout) {
  const std::int64_t rot = table.rot_dim;
  const std::int64_t half = rot / 2;
  std::vector<double> out = x;
  for (std::size_t t = 0; t < positions.size(); ++t) {
    for (std::int64_t h = 0; h < heads; ++h) {
      double* head = out.data() + (t * heads + h) * head_dim;
      std::vector<double> q(head, head + rot);
      if (layout == RopeLayout::kInterleaved)
        for (std::int64_t i = 0; i < half; ++i) {
          q[i] = head[2 * i];
          q[i + half] = head[2 * i + 1];
        }
      for (std::int64_t d = 0; d < rot; ++d) {
        const double rotated_half = d < half ? -q[d + half] : q[d - half];
        const std::int64_t f = positions[t] * half + d % half;
        head[d] = q[d] * table.cos[f] + rotated_half * table.sin[f];
      }
    }
  }
  return out;
}

TEST(OpsRope, ForwardMatchesHuggingFaceFormulaOnBothLayouts) {
  std::mt19937_64 rng(11);
  const std::int64_t tokens = 3, heads = 2, head_dim = 12;
  const std::vector<std::int64_t> positions = {0, 4, 2};
  const RopeTable<double> table(head_dim, 10000.0, 5, 0.5, deepseek_fixture_yarn());
  const std::vector<double> x = uniform_vector(rng, tokens * heads * head_dim);
  for (const RopeLayout layout : {RopeLayout::kHalf, RopeLayout::kInterleaved}) {
    std::vector<double> out(x.size());
    rope_forward(out.data(), x.data(), table, positions.data(), tokens, heads, head_dim, layout);
    EXPECT_LT(max_relative_error(out, hf_rope(x, table, positions, heads, head_dim, layout)),
              1e-15);
    std::vector<double> in_place = x;
    rope_forward(in_place.data(), in_place.data(), table, positions.data(), tokens, heads, head_dim,
                 layout);
    EXPECT_EQ(in_place, out);
  }
}

TEST(OpsRope, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(5);
  const std::int64_t tokens = 3, heads = 2, head_dim = 12;
  const std::vector<std::int64_t> positions = {3, 0, 7};
  const RopeTable<double> table(head_dim, 500.0, 8, 0.5);  // rot_dim 6 of 12
  for (const RopeLayout layout : {RopeLayout::kHalf, RopeLayout::kInterleaved}) {
    std::vector<double> x = uniform_vector(rng, tokens * heads * head_dim);
    const std::vector<double> dout = uniform_vector(rng, x.size());
    auto loss = [&](const std::vector<double>&) {
      std::vector<double> out(x.size());
      rope_forward(out.data(), x.data(), table, positions.data(), tokens, heads, head_dim, layout);
      return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
    };
    std::vector<double> dx(x.size(), -1.0);
    rope_backward(dx.data(), dout.data(), table, positions.data(), tokens, heads, head_dim, layout);
    EXPECT_LT(max_relative_error(dx, numeric_gradient(loss, x)), 1e-9);
  }
}

TEST(OpsRope, RejectsPositionsOutsideTheTableAndOddRotaryDims) {
  const RopeTable<float> table(8, 10000.0, 4);
  const std::vector<float> x(8);
  std::vector<float> out(8);
  const std::int64_t position = 4;
  EXPECT_THROW(rope_forward(out.data(), x.data(), table, &position, 1, 1, 8, RopeLayout::kHalf),
               moebench::Error);
  EXPECT_THROW(RopeTable<float>(6, 10000.0, 4, 0.5), moebench::Error);  // rot_dim 3
  EXPECT_THROW(RopeTable<float>(8, 10000.0, 4, 1.0, YarnScaling{}), moebench::Error);
}

}  // namespace
}  // namespace moebench::ops::cpu
