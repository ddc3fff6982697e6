#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/permute.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

// 3 tokens, top-2 of 3 experts: token 0 -> experts 2, 0; token 1 -> 0, 1; token 2 -> 2, 1.
const std::vector<std::int64_t> kRoutingMap = {2, 0, 0, 1, 2, 1};

TEST(OpsPermute, SortsSlotsByExpertThenToken) {
  std::vector<std::int64_t> row_id_map(6), tokens_per_expert(3);
  const std::int64_t rows = sort_slots_by_expert(row_id_map.data(), tokens_per_expert.data(),
                                                 kRoutingMap.data(), 3, 2, 3);
  ASSERT_EQ(rows, 6);
  EXPECT_EQ(tokens_per_expert, (std::vector<std::int64_t>{2, 2, 2}));
  // Expert 0: token 0 slot 1, token 1 slot 0; expert 1: tokens 1, 2; expert 2: tokens 0, 2.
  EXPECT_EQ(row_id_map, (std::vector<std::int64_t>{1, 2, 3, 5, 0, 4}));

  const std::vector<float> tokens = {1, 10, 2, 20, 3, 30};
  std::vector<float> permuted(12);
  permute_forward(permuted.data(), tokens.data(), row_id_map.data(), rows, 3, 2, 2);
  EXPECT_EQ(permuted, (std::vector<float>{1, 10, 2, 20, 2, 20, 3, 30, 1, 10, 3, 30}));

  // Combining: token 0 = 0.25 * (its expert-0 row) + 0.75 * (its expert-2 row).
  const std::vector<float> probs = {0.75f, 0.25f, 0.5f, 0.5f, 1.0f, 0.0f};
  std::vector<float> expert_out(12);
  std::iota(expert_out.begin(), expert_out.end(), 0.0f);
  std::vector<float> out(6);
  unpermute_forward(out.data(), expert_out.data(), probs.data(), row_id_map.data(), rows, 3, 2, 2);
  EXPECT_FLOAT_EQ(out[0], 0.25f * 0 + 0.75f * 8);
  EXPECT_FLOAT_EQ(out[3], 0.5f * 3 + 0.5f * 5);
  EXPECT_FLOAT_EQ(out[4], 1.0f * 10 + 0.0f * 6);
}

TEST(OpsPermute, UnpermuteWithNormalisedProbsUndoesPermute) {
  std::mt19937_64 rng(2);
  const std::int64_t tokens = 7, topk = 3, experts = 5, hidden = 4;
  std::vector<std::int64_t> routing_map(tokens * topk);
  std::vector<double> probs(tokens * topk);
  std::vector<std::int64_t> all_experts(experts);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::iota(all_experts.begin(), all_experts.end(), 0);
    std::shuffle(all_experts.begin(), all_experts.end(), rng);
    const std::vector<double> weights = uniform_vector(rng, topk, 0.1, 1.0);
    const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
    for (std::int64_t j = 0; j < topk; ++j) {
      routing_map[t * topk + j] = all_experts[j];
      probs[t * topk + j] = weights[j] / sum;
    }
  }
  std::vector<std::int64_t> row_id_map(tokens * topk), tokens_per_expert(experts);
  const std::int64_t rows = sort_slots_by_expert(row_id_map.data(), tokens_per_expert.data(),
                                                 routing_map.data(), tokens, topk, experts);
  ASSERT_EQ(rows, tokens * topk);
  EXPECT_EQ(std::accumulate(tokens_per_expert.begin(), tokens_per_expert.end(), std::int64_t{0}),
            rows);

  const std::vector<double> input = uniform_vector(rng, tokens * hidden);
  std::vector<double> permuted(rows * hidden), output(tokens * hidden);
  permute_forward(permuted.data(), input.data(), row_id_map.data(), rows, tokens, topk, hidden);
  unpermute_forward(output.data(), permuted.data(), probs.data(), row_id_map.data(), rows, tokens,
                    topk, hidden);
  EXPECT_LT(max_relative_error(output, input), 1e-15);
}

TEST(OpsPermute, DropsTheLowestProbabilitiesBeyondCapacity) {
  // 4 tokens, top-2 of 2 experts, capacity 3. Expert 0 sees probs 0.6 0.3 0.1 0.6 (tokens
  // 0..3) and drops token 2's 0.1; expert 1 sees 0.4 0.7 0.9 0.4 and drops the later of the
  // tied 0.4s, token 3's.
  std::vector<std::int64_t> routing_map = {0, 1, 0, 1, 1, 0, 0, 1};
  std::vector<float> probs = {0.6f, 0.4f, 0.3f, 0.7f, 0.9f, 0.1f, 0.6f, 0.4f};
  EXPECT_EQ(drop_tokens_over_capacity(routing_map.data(), probs.data(), 4, 2, 2, 3), 2);
  EXPECT_EQ(routing_map, (std::vector<std::int64_t>{0, 1, 0, 1, 1, -1, 0, -1}));
  EXPECT_EQ(probs, (std::vector<float>{0.6f, 0.4f, 0.3f, 0.7f, 0.9f, 0.0f, 0.6f, 0.0f}));

  std::vector<std::int64_t> row_id_map(8), tokens_per_expert(2);
  EXPECT_EQ(sort_slots_by_expert(row_id_map.data(), tokens_per_expert.data(), routing_map.data(), 4,
                                 2, 2),
            6);
  EXPECT_EQ(tokens_per_expert, (std::vector<std::int64_t>{3, 3}));
}

TEST(OpsPermute, BackwardsMatchFiniteDifferences) {
  std::mt19937_64 rng(4);
  const std::int64_t tokens = 5, topk = 2, experts = 4, hidden = 3;
  // Token 3's second slot is dropped: its prob gets no gradient.
  const std::vector<std::int64_t> routing_map = {0, 3, 1, 0, 3, 2, 2, -1, 1, 3};
  std::vector<std::int64_t> row_id_map(tokens * topk), tokens_per_expert(experts);
  const std::int64_t rows = sort_slots_by_expert(row_id_map.data(), tokens_per_expert.data(),
                                                 routing_map.data(), tokens, topk, experts);
  ASSERT_EQ(rows, 9);

  std::vector<double> input = uniform_vector(rng, tokens * hidden);
  const std::vector<double> dpermuted = uniform_vector(rng, rows * hidden);
  auto permute_loss = [&](const std::vector<double>&) {
    std::vector<double> permuted(rows * hidden);
    permute_forward(permuted.data(), input.data(), row_id_map.data(), rows, tokens, topk, hidden);
    return std::inner_product(permuted.begin(), permuted.end(), dpermuted.begin(), 0.0);
  };
  std::vector<double> dinput(input.size(), -1.0);
  permute_backward(dinput.data(), dpermuted.data(), row_id_map.data(), rows, tokens, topk, hidden);
  EXPECT_LT(max_relative_error(dinput, numeric_gradient(permute_loss, input)), 1e-9);

  std::vector<double> expert_out = uniform_vector(rng, rows * hidden);
  std::vector<double> probs = uniform_vector(rng, tokens * topk, 0.0, 1.0);
  const std::vector<double> dout = uniform_vector(rng, tokens * hidden);
  auto unpermute_loss = [&](const std::vector<double>&) {
    std::vector<double> out(tokens * hidden);
    unpermute_forward(out.data(), expert_out.data(), probs.data(), row_id_map.data(), rows, tokens,
                      topk, hidden);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };
  std::vector<double> dexpert_out(expert_out.size(), -1.0), dprobs(probs.size(), -1.0);
  unpermute_backward(dexpert_out.data(), dprobs.data(), dout.data(), expert_out.data(),
                     probs.data(), row_id_map.data(), rows, tokens, topk, hidden);
  EXPECT_LT(max_relative_error(dexpert_out, numeric_gradient(unpermute_loss, expert_out)), 1e-9);
  EXPECT_LT(max_relative_error(dprobs, numeric_gradient(unpermute_loss, probs)), 1e-9);
  EXPECT_EQ(dprobs[7], 0.0);
}

TEST(OpsPermute, RejectsATokenRoutedTwiceToOneExpert) {
  const std::vector<std::int64_t> routing_map = {1, 1};
  std::vector<std::int64_t> row_id_map(2), tokens_per_expert(2);
  EXPECT_THROW(sort_slots_by_expert(row_id_map.data(), tokens_per_expert.data(), routing_map.data(),
                                    1, 2, 2),
               moebench::Error);
}

}  // namespace
}  // namespace moebench::ops::cpu

namespace moebench::ops {
namespace {

// The Tensor-level combine with the layer's residual: the same sums plus the
// residual, and out may not be the residual's buffer.
TEST(OpsPermuteTensor, UnpermuteAddsTheResidual) {
  const PermuteMap map = sort_slots_by_expert(Tensor::from_vector(cpu::kRoutingMap, {3, 2}), 3);
  std::vector<float> rows(12);
  std::iota(rows.begin(), rows.end(), 0.0f);
  const Tensor expert_out = Tensor::from_vector(rows, {6, 2});
  const Tensor probs = Tensor::from_vector(std::vector<float>{0.75f, 0.25f, 0.5f, 0.5f, 1.0f, 0.0f}, {3, 2});
  const Tensor residual = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor plain = Tensor::empty({3, 2}, DType::F32), with = Tensor::empty({3, 2}, DType::F32);
  unpermute_forward(plain, expert_out, probs, map);
  unpermute_forward(with, expert_out, probs, map, residual);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(with.data<float>()[i], plain.data<float>()[i] + residual.data<float>()[i]);
  Tensor aliased = residual.clone();
  EXPECT_THROW(unpermute_forward(aliased, expert_out, probs, map, aliased), Error);
}

}  // namespace
}  // namespace moebench::ops
