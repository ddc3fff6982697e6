#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/ops/rmsnorm.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

TEST(OpsRmsnorm, ForwardScalesByTheRootMeanSquare) {
  // mean(x^2) = 4, so rstd = 1/2 and out = x / 2 * weight.
  const std::vector<float> inp = {2, -2, 2, -2};
  const std::vector<float> weight = {1, 2, 3, 4};
  std::vector<float> out(4);
  std::vector<float> rstd(1);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), 1, 4, 0.0);
  EXPECT_EQ(out, (std::vector<float>{1, -2, 3, -4}));
  EXPECT_EQ(rstd[0], 0.5f);
  // eps joins the mean square under the root: 1 / sqrt(4 + 5) = 1/3.
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), 1, 4, 5.0);
  EXPECT_FLOAT_EQ(rstd[0], 1.0f / 3.0f);
}

TEST(OpsRmsnorm, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(3);
  const std::int64_t n = 3, c = 7;
  const double eps = 1e-5;
  std::vector<double> inp = uniform_vector(rng, n * c);
  std::vector<double> weight = uniform_vector(rng, c, 0.5, 1.5);
  const std::vector<double> dout = uniform_vector(rng, n * c);
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> out(n * c);
    std::vector<double> rstd(n);
    rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), n, c, eps);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };

  std::vector<double> out(n * c);
  std::vector<double> rstd(n);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), n, c, eps);
  const std::vector<double> dweight_before = uniform_vector(rng, c);
  std::vector<double> dinp(n * c, -1.0);
  std::vector<double> dweight = dweight_before;
  rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), inp.data(), weight.data(), rstd.data(),
                   n, c);
  for (std::int64_t j = 0; j < c; ++j) dweight[j] -= dweight_before[j];

  EXPECT_LT(max_relative_error(dinp, numeric_gradient(loss, inp)), 1e-8);
  EXPECT_LT(max_relative_error(dweight, numeric_gradient(loss, weight)), 1e-8);
}

}  // namespace
}  // namespace moebench::ops::cpu
