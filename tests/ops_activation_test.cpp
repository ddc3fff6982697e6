#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/ops/activation.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

TEST(OpsSigmoid, ForwardAtKnownPoints) {
  // sigmoid(ln 3) = 3 / (3 + 1); far out it saturates without NaN.
  const std::vector<double> inp = {0.0, std::log(3.0), -1000.0, 1000.0};
  std::vector<double> out(4);
  sigmoid_forward(out.data(), inp.data(), 4);
  EXPECT_DOUBLE_EQ(out[0], 0.5);
  EXPECT_DOUBLE_EQ(out[1], 0.75);
  EXPECT_EQ(out[2], 0.0);
  EXPECT_EQ(out[3], 1.0);
}

TEST(OpsSigmoid, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(13);
  const std::int64_t n = 9;
  std::vector<double> inp = uniform_vector(rng, n, -4.0, 4.0);
  const std::vector<double> dout = uniform_vector(rng, n);
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> out(n);
    sigmoid_forward(out.data(), inp.data(), n);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };
  std::vector<double> out(n);
  sigmoid_forward(out.data(), inp.data(), n);
  std::vector<double> dinp(n, -1.0);
  sigmoid_backward(dinp.data(), dout.data(), out.data(), n);
  EXPECT_LT(max_relative_error(dinp, numeric_gradient(loss, inp)), 1e-8);
}

TEST(OpsSoftmax, ForwardNormalisesEachRowStably) {
  // Row 0: exp(0) : exp(ln 3) = 1 : 3. Row 1: the same shifted by 1000,
  // which overflows exp unless the row maximum is subtracted first (and
  // rounds ln 3 to the spacing of doubles near 1000).
  const double ln3 = std::log(3.0);
  const std::vector<double> inp = {0.0, ln3, 1000.0, 1000.0 + ln3};
  std::vector<double> out(4);
  softmax_forward(out.data(), inp.data(), 2, 2);
  for (int row = 0; row < 2; ++row) {
    EXPECT_NEAR(out[row * 2], 0.25, 1e-12);
    EXPECT_NEAR(out[row * 2 + 1], 0.75, 1e-12);
  }
}

TEST(OpsSoftmax, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(17);
  const std::int64_t n = 3, c = 7;
  std::vector<double> inp = uniform_vector(rng, n * c, -3.0, 3.0);
  const std::vector<double> dout = uniform_vector(rng, n * c);
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> out(n * c);
    softmax_forward(out.data(), inp.data(), n, c);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };
  std::vector<double> out(n * c);
  softmax_forward(out.data(), inp.data(), n, c);
  std::vector<double> dinp(n * c, -1.0);
  softmax_backward(dinp.data(), dout.data(), out.data(), n, c);
  EXPECT_LT(max_relative_error(dinp, numeric_gradient(loss, inp)), 1e-8);
}

}  // namespace
}  // namespace moebench::ops::cpu
