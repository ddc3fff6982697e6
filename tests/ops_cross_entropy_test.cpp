#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/cross_entropy.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

TEST(OpsCrossEntropy, ForwardAtKnownPoints) {
  // Row 0: four equal logits, loss = ln 4 whatever the label.
  // Row 1: V = 2 of Vpad = 4; the padded 100s are ignored, so
  //   loss = ln(e^1 + e^2) - 2 = ln(1 + e^-1).
  // Row 2: 1000 and 999 would overflow exp without max subtraction; with the
  //   label at the maximum, loss = ln(1 + e^-1) up to the spacing of doubles
  //   near 1000.
  const std::vector<double> logits = {
      0.5,    0.5,   0.5,   0.5,    //
      1.0,    2.0,   100.0, 100.0,  //
      1000.0, 999.0, 0.0,   0.0,    //
  };
  const std::vector<std::int64_t> full_labels = {3};
  std::vector<double> losses(3);
  cross_entropy_forward(losses.data(), logits.data(), full_labels.data(), 1, 4, 4);
  EXPECT_DOUBLE_EQ(losses[0], std::log(4.0));

  const std::vector<std::int64_t> labels = {0, 1, 0};
  cross_entropy_forward(losses.data(), logits.data(), labels.data(), 3, 2, 4);
  EXPECT_DOUBLE_EQ(losses[0], std::log(2.0));
  EXPECT_DOUBLE_EQ(losses[1], std::log1p(std::exp(-1.0)));
  EXPECT_NEAR(losses[2], std::log1p(std::exp(-1.0)), 1e-12);
}

TEST(OpsCrossEntropy, MaskedMeanAveragesTheSelectedTokens) {
  const std::vector<float> losses = {1, 2, 3, 10};
  const std::vector<float> mask = {1, 1, 1, 0};
  EXPECT_FLOAT_EQ(masked_mean_forward(losses.data(), mask.data(), 4), 2.0f);
  EXPECT_FLOAT_EQ(masked_mean_forward(losses.data(), nullptr, 4), 4.0f);
  std::vector<float> dlosses(4, -1.0f);
  masked_mean_backward(dlosses.data(), 6.0f, mask.data(), 4);
  EXPECT_EQ(dlosses, (std::vector<float>{2, 2, 2, 0}));
  masked_mean_backward(dlosses.data(), 6.0f, nullptr, 4);
  EXPECT_EQ(dlosses, (std::vector<float>{1.5f, 1.5f, 1.5f, 1.5f}));
}

// The training loss, masked_mean(cross_entropy(logits)), differentiated by
// chaining the two backwards, against finite differences over every logit.
TEST(OpsCrossEntropy, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(23);
  const std::int64_t n = 5, vocab = 7, padded_vocab = 9;
  std::vector<double> logits = uniform_vector(rng, n * padded_vocab, -3.0, 3.0);
  const std::vector<std::int64_t> labels = {6, 0, 3, 3, 1};
  const std::vector<double> mask = {1, 0, 1, 1, 0.5};
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> losses(n);
    cross_entropy_forward(losses.data(), logits.data(), labels.data(), n, vocab, padded_vocab);
    return masked_mean_forward(losses.data(), mask.data(), n);
  };
  std::vector<double> dlosses(n);
  masked_mean_backward(dlosses.data(), 1.0, mask.data(), n);
  std::vector<double> dlogits(logits.size(), -1.0);
  cross_entropy_backward(dlogits.data(), dlosses.data(), logits.data(), labels.data(), n, vocab,
                         padded_vocab);
  EXPECT_LT(max_relative_error(dlogits, numeric_gradient(loss, logits)), 1e-8);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = vocab; j < padded_vocab; ++j) {
      EXPECT_EQ(dlogits[i * padded_vocab + j], 0.0);
    }
  }
}

TEST(OpsCrossEntropy, InvalidArgumentsThrow) {
  const std::vector<float> logits(8, 0.0f);
  std::vector<float> buffer(8);
  const std::vector<std::int64_t> label_in_padding = {0, 2};  // V = 2, Vpad = 4
  EXPECT_THROW(
      cross_entropy_forward(buffer.data(), logits.data(), label_in_padding.data(), 2, 2, 4), Error);
  EXPECT_THROW(cross_entropy_backward(buffer.data(), buffer.data(), logits.data(),
                                      label_in_padding.data(), 2, 2, 4),
               Error);
  const std::vector<std::int64_t> labels = {0, 1};
  EXPECT_THROW(cross_entropy_forward(buffer.data(), logits.data(), labels.data(), 2, 5, 4), Error);
  const std::vector<float> empty_mask = {0, 0};
  EXPECT_THROW(masked_mean_forward(logits.data(), empty_mask.data(), 2), Error);
  EXPECT_THROW(masked_mean_backward(buffer.data(), 1.0f, empty_mask.data(), 2), Error);
}

}  // namespace
}  // namespace moebench::ops::cpu
