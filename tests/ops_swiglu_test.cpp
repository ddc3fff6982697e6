#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/ops/swiglu.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

TEST(OpsSwiglu, GateIsTheFirstHalfAndUpTheSecond) {
  // Row [gate | up] = [0, ln 3 | 5, 2]: silu(0) = 0 and
  // silu(ln 3) = ln 3 * sigmoid(ln 3) = 0.75 ln 3.
  const double ln3 = std::log(3.0);
  const std::vector<double> inp = {0.0, ln3, 5.0, 2.0};
  std::vector<double> out(2);
  swiglu_forward(out.data(), inp.data(), 1, 2);
  EXPECT_DOUBLE_EQ(out[0], 0.0);
  EXPECT_DOUBLE_EQ(out[1], 0.75 * ln3 * 2.0);
}

TEST(OpsSwiglu, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(5);
  const std::int64_t n = 3, f = 5;
  std::vector<double> inp = uniform_vector(rng, n * 2 * f, -3.0, 3.0);
  const std::vector<double> dout = uniform_vector(rng, n * f);
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> out(n * f);
    swiglu_forward(out.data(), inp.data(), n, f);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };
  std::vector<double> dinp(inp.size(), -1.0);
  swiglu_backward(dinp.data(), dout.data(), inp.data(), n, f);
  EXPECT_LT(max_relative_error(dinp, numeric_gradient(loss, inp)), 1e-8);
}

}  // namespace
}  // namespace moebench::ops::cpu
