#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/attention.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

std::int64_t q_size(const AttentionShape& s) { return s.batch * s.seq * s.q_heads * s.qk_head_dim; }
std::int64_t k_size(const AttentionShape& s) {
  return s.batch * s.seq * s.kv_heads * s.qk_head_dim;
}
std::int64_t v_size(const AttentionShape& s) { return s.batch * s.seq * s.kv_heads * s.v_head_dim; }
std::int64_t out_size(const AttentionShape& s) {
  return s.batch * s.seq * s.q_heads * s.v_head_dim;
}

struct NaiveAttention {
  std::vector<double> out;  // [B, S, Hq, Dv]
  std::vector<double> lse;  // [B, Hq, S]
};

// HF's eager attention: the full [S, S] score matrix per (batch, head), -inf above the
// diagonal, a row softmax, then probabilities @ v; kv heads repeated for GQA.
NaiveAttention naive_attention(const std::vector<double>& q, const std::vector<double>& k,
                               const std::vector<double>& v, const AttentionShape& s,
                               double scale) {
  NaiveAttention result{std::vector<double>(out_size(s)),
                        std::vector<double>(s.batch * s.q_heads * s.seq)};
  const std::int64_t group = s.q_heads / s.kv_heads;
  std::vector<double> scores(s.seq * s.seq);
  for (std::int64_t b = 0; b < s.batch; ++b) {
    for (std::int64_t h = 0; h < s.q_heads; ++h) {
      const std::int64_t kv = h / group;
      for (std::int64_t i = 0; i < s.seq; ++i) {
        for (std::int64_t j = 0; j < s.seq; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < s.qk_head_dim; ++d)
            dot += q[((b * s.seq + i) * s.q_heads + h) * s.qk_head_dim + d] *
                   k[((b * s.seq + j) * s.kv_heads + kv) * s.qk_head_dim + d];
          scores[i * s.seq + j] = j <= i ? scale * dot : -std::numeric_limits<double>::infinity();
        }
      }
      for (std::int64_t i = 0; i < s.seq; ++i) {
        double* row = scores.data() + i * s.seq;
        const double max = *std::max_element(row, row + s.seq);
        double sum = 0;
        for (std::int64_t j = 0; j < s.seq; ++j) sum += std::exp(row[j] - max);
        result.lse[(b * s.q_heads + h) * s.seq + i] = max + std::log(sum);
        for (std::int64_t j = 0; j < s.seq; ++j) row[j] = std::exp(row[j] - max) / sum;
        for (std::int64_t d = 0; d < s.v_head_dim; ++d) {
          double value = 0;
          for (std::int64_t j = 0; j < s.seq; ++j)
            value += row[j] * v[((b * s.seq + j) * s.kv_heads + kv) * s.v_head_dim + d];
          result.out[((b * s.seq + i) * s.q_heads + h) * s.v_head_dim + d] = value;
        }
      }
    }
  }
  return result;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

template <typename T>
void expect_forward_matches_naive(const AttentionShape& shape, std::optional<double> scale,
                                  double tolerance) {
  std::mt19937_64 rng(7);
  const std::vector<double> q = uniform_vector(rng, q_size(shape), -2, 2);
  const std::vector<double> k = uniform_vector(rng, k_size(shape), -2, 2);
  const std::vector<double> v = uniform_vector(rng, v_size(shape));
  const NaiveAttention expected =
      naive_attention(q, k, v, shape, scale.value_or(1.0 / std::sqrt(shape.qk_head_dim)));

  const std::vector<T> q_t = cast<T>(q), k_t = cast<T>(k), v_t = cast<T>(v);
  std::vector<T> out(out_size(shape)), lse(expected.lse.size());
  causal_attention_forward(out.data(), lse.data(), q_t.data(), k_t.data(), v_t.data(), shape,
                           scale);
  EXPECT_LT(max_relative_error(std::vector<double>(out.begin(), out.end()), expected.out),
            tolerance);
  EXPECT_LT(max_relative_error(std::vector<double>(lse.begin(), lse.end()), expected.lse),
            tolerance);
}

TEST(OpsAttention, ForwardMatchesNaiveCausalSoftmax) {
  // GQA with MLA-like unequal head dims, MQA, and plain MHA with an explicit scale.
  const AttentionShape gqa{
      .batch = 2, .seq = 6, .q_heads = 4, .kv_heads = 2, .qk_head_dim = 6, .v_head_dim = 4};
  const AttentionShape mqa{
      .batch = 1, .seq = 5, .q_heads = 3, .kv_heads = 1, .qk_head_dim = 4, .v_head_dim = 4};
  const AttentionShape mha{
      .batch = 1, .seq = 4, .q_heads = 2, .kv_heads = 2, .qk_head_dim = 24, .v_head_dim = 16};
  expect_forward_matches_naive<double>(gqa, std::nullopt, 1e-14);
  expect_forward_matches_naive<float>(gqa, std::nullopt, 1e-5);
  expect_forward_matches_naive<double>(mqa, std::nullopt, 1e-14);
  expect_forward_matches_naive<double>(mha, 0.3245, 1e-14);
  expect_forward_matches_naive<float>(mha, 0.3245, 1e-5);
}

TEST(OpsAttention, FirstTokenAttendsOnlyToItself) {
  const AttentionShape shape{
      .batch = 1, .seq = 2, .q_heads = 1, .kv_heads = 1, .qk_head_dim = 1, .v_head_dim = 2};
  const std::vector<float> q = {1, 1}, k = {0, 0}, v = {3, 4, 5, 6};
  std::vector<float> out(4), lse(2);
  causal_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), shape);
  // Row 0 sees v0 alone; row 1 sees two equal scores: the mean of v0 and v1, lse = ln 2.
  EXPECT_EQ(out, (std::vector<float>{3, 4, 4, 5}));
  EXPECT_FLOAT_EQ(lse[0], 0.0f);
  EXPECT_FLOAT_EQ(lse[1], std::log(2.0f));
}

TEST(OpsAttention, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(9);
  const AttentionShape shape{
      .batch = 2, .seq = 4, .q_heads = 4, .kv_heads = 2, .qk_head_dim = 5, .v_head_dim = 3};
  const double scale = 0.7;
  std::vector<double> q = uniform_vector(rng, q_size(shape));
  std::vector<double> k = uniform_vector(rng, k_size(shape));
  std::vector<double> v = uniform_vector(rng, v_size(shape));
  const std::vector<double> dout = uniform_vector(rng, out_size(shape));
  std::vector<double> out(out_size(shape)), lse(shape.batch * shape.q_heads * shape.seq);
  auto loss = [&](const std::vector<double>&) {
    causal_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), shape, scale);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };

  loss(q);
  std::vector<double> dq(q.size(), -1.0), dk(k.size(), -1.0), dv(v.size(), -1.0);
  causal_attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                            v.data(), out.data(), lse.data(), shape, scale);
  EXPECT_LT(max_relative_error(dq, numeric_gradient(loss, q)), 1e-8);
  EXPECT_LT(max_relative_error(dk, numeric_gradient(loss, k)), 1e-8);
  EXPECT_LT(max_relative_error(dv, numeric_gradient(loss, v)), 1e-8);
}

TEST(OpsAttention, RejectsQueryHeadsNotAMultipleOfKvHeads) {
  const AttentionShape shape{
      .batch = 1, .seq = 1, .q_heads = 3, .kv_heads = 2, .qk_head_dim = 1, .v_head_dim = 1};
  std::vector<float> buffer(8);
  EXPECT_THROW(causal_attention_forward(buffer.data(), buffer.data(), buffer.data(), buffer.data(),
                                        buffer.data(), shape),
               moebench::Error);
}

}  // namespace
}  // namespace moebench::ops::cpu
