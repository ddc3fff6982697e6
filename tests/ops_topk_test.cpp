#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/topk.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::uniform_vector;

TEST(OpsTopk, TiesGoToTheLowerIndexFirst) {
  const std::vector<float> scores = {1, 3, 3, 2, 3};
  std::vector<float> values(4);
  std::vector<std::int64_t> indices(4);
  topk(values.data(), indices.data(), scores.data(), 1, 5, 4);
  EXPECT_EQ(indices, (std::vector<std::int64_t>{1, 2, 4, 3}));
  EXPECT_EQ(values, (std::vector<float>{3, 3, 3, 2}));
}

TEST(OpsTopk, SelectsTheLargestSortedDescending) {
  std::mt19937_64 rng(1);
  const std::int64_t rows = 20, experts = 16, k = 4;
  const std::vector<double> scores = uniform_vector(rng, rows * experts);
  std::vector<double> values(rows * k);
  std::vector<std::int64_t> indices(rows * k);
  topk(values.data(), indices.data(), scores.data(), rows, experts, k);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<double> sorted(scores.begin() + r * experts, scores.begin() + (r + 1) * experts);
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    for (std::int64_t i = 0; i < k; ++i) {
      EXPECT_EQ(values[r * k + i], sorted[i]);
      EXPECT_EQ(scores[r * experts + indices[r * k + i]], sorted[i]);
    }
  }
}

// 8 experts in 4 groups of 2. Group max: 0.10 0.30 0.12 0.20; group top-2 sum: 0.19 0.30
// 0.23 0.21. Plain top-3 is experts 2, 6, 4.
const std::vector<double> kGroupedScores = {0.10, 0.09, 0.30, 0.00, 0.12, 0.11, 0.20, 0.01};

TEST(OpsTopk, GroupLimitedByMaxKeepsTheGroupsWithTheBestExpert) {
  // DeepSeek-V2 group_limited_greedy, topk_group 2: groups 1 and 3 stay, so expert 4 (0.12,
  // group 2) loses to expert 7 (0.01).
  std::vector<double> values(3);
  std::vector<std::int64_t> indices(3);
  group_limited_topk(values.data(), indices.data(), kGroupedScores.data(), 1, 8, 3, 4, 2,
                     GroupScore::kMax);
  EXPECT_EQ(indices, (std::vector<std::int64_t>{2, 6, 7}));
  EXPECT_EQ(values, (std::vector<double>{0.30, 0.20, 0.01}));
}

TEST(OpsTopk, GroupLimitedByTop2SumKeepsTheGroupsWithTheBestPairs) {
  // DeepSeek-V3 noaux_tc, topk_group 2: groups 1 and 2 stay, so expert 6 (0.20) is out.
  std::vector<double> values(3);
  std::vector<std::int64_t> indices(3);
  group_limited_topk(values.data(), indices.data(), kGroupedScores.data(), 1, 8, 3, 4, 2,
                     GroupScore::kTop2Sum);
  EXPECT_EQ(indices, (std::vector<std::int64_t>{2, 4, 5}));
  EXPECT_EQ(values, (std::vector<double>{0.30, 0.12, 0.11}));
}

TEST(OpsTopk, GroupLimitedWithOneGroupIsPlainTopk) {
  std::vector<double> grouped(3), plain(3);
  std::vector<std::int64_t> grouped_indices(3), plain_indices(3);
  group_limited_topk(grouped.data(), grouped_indices.data(), kGroupedScores.data(), 1, 8, 3, 1, 1,
                     GroupScore::kMax);
  topk(plain.data(), plain_indices.data(), kGroupedScores.data(), 1, 8, 3);
  EXPECT_EQ(grouped_indices, (std::vector<std::int64_t>{2, 6, 4}));
  EXPECT_EQ(grouped_indices, plain_indices);
}

TEST(OpsTopk, GroupTiesGoToTheLowerGroupFirst) {
  // Every group has max 1, so groups 0 and 1 stay.
  const std::vector<float> scores = {1, 0, 0, 1, 1, 0.5f, 1, 0.5f};
  std::vector<float> values(2);
  std::vector<std::int64_t> indices(2);
  group_limited_topk(values.data(), indices.data(), scores.data(), 1, 8, 2, 4, 2, GroupScore::kMax);
  EXPECT_EQ(indices, (std::vector<std::int64_t>{0, 3}));
}

TEST(OpsTopk, RejectsImpossibleSelections) {
  std::vector<float> values(8), scores(8);
  std::vector<std::int64_t> indices(8);
  EXPECT_THROW(topk(values.data(), indices.data(), scores.data(), 1, 8, 9), moebench::Error);
  EXPECT_THROW(group_limited_topk(values.data(), indices.data(), scores.data(), 1, 8, 2, 3, 1,
                                  GroupScore::kMax),
               moebench::Error);  // 3 groups do not divide 8 experts
  EXPECT_THROW(group_limited_topk(values.data(), indices.data(), scores.data(), 1, 8, 5, 4, 2,
                                  GroupScore::kMax),
               moebench::Error);  // 2 groups of 2 hold only 4 experts
}

}  // namespace
}  // namespace moebench::ops::cpu
