#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/core/tensor.h"
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
                   nullptr, n, c);
  for (std::int64_t j = 0; j < c; ++j) dweight[j] -= dweight_before[j];

  EXPECT_LT(max_relative_error(dinp, numeric_gradient(loss, inp)), 1e-8);
  EXPECT_LT(max_relative_error(dweight, numeric_gradient(loss, weight)), 1e-8);
}

// The residual addend gives exactly the gradient without it plus the addend
// (one more rounding in T, as a separate add would do), and the same dweight.
template <typename T>
void check_residual_addend(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto as_t = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
  const std::vector<T> inp = as_t(uniform_vector(rng, n * c));
  const std::vector<T> weight = as_t(uniform_vector(rng, c, 0.5, 1.5));
  const std::vector<T> dout = as_t(uniform_vector(rng, n * c));
  const std::vector<T> residual = as_t(uniform_vector(rng, n * c));
  const std::vector<T> dweight_before = as_t(uniform_vector(rng, c));
  std::vector<T> out(n * c), rstd(n);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), n, c, 1e-5);

  std::vector<T> expected(n * c), expected_dweight = dweight_before;
  rmsnorm_backward(expected.data(), expected_dweight.data(), dout.data(), inp.data(), weight.data(), rstd.data(),
                   nullptr, n, c);
  for (std::int64_t i = 0; i < n * c; ++i) expected[i] += residual[i];

  std::vector<T> dinp(n * c, T(-1)), dweight = dweight_before;
  rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), inp.data(), weight.data(), rstd.data(),
                   residual.data(), n, c);
  EXPECT_EQ(dinp, expected);
  EXPECT_EQ(dweight, expected_dweight);
}

TEST(OpsRmsnorm, BackwardAddsTheResidualGradient) {
  check_residual_addend<float>(5, 12, 11);
  check_residual_addend<double>(3, 7, 12);
}

TEST(OpsRmsnorm, TensorBackwardAddsTheResidualGradientAndChecksIt) {
  std::mt19937_64 rng(21);
  const std::int64_t n = 4, c = 6;
  const auto tensor = [&](std::vector<std::int64_t> shape, double low, double high) {
    std::int64_t numel = 1;
    for (std::int64_t d : shape) numel *= d;
    const std::vector<double> v = uniform_vector(rng, numel, low, high);
    return Tensor::from_vector(std::vector<float>(v.begin(), v.end()), shape);
  };
  const Tensor inp = tensor({2, 2, c}, -1, 1), weight = tensor({c}, 0.5, 1.5), dout = tensor({2, 2, c}, -1, 1);
  const Tensor residual = tensor({2, 2, c}, -1, 1);
  Tensor out = Tensor::empty({2, 2, c}, DType::F32), rstd = Tensor::empty({n}, DType::F32);
  ops::rmsnorm_forward(out, rstd, inp, weight, 1e-5);

  Tensor plain = Tensor::empty({2, 2, c}, DType::F32), fused = Tensor::empty({2, 2, c}, DType::F32);
  Tensor dweight_plain = Tensor::zeros({c}, DType::F32), dweight_fused = Tensor::zeros({c}, DType::F32);
  ops::rmsnorm_backward(plain, dweight_plain, dout, inp, weight, rstd);
  ops::rmsnorm_backward(fused, dweight_fused, dout, inp, weight, rstd, residual);
  for (std::int64_t i = 0; i < n * c; ++i)
    EXPECT_EQ(fused.data<float>()[i], plain.data<float>()[i] + residual.data<float>()[i]) << i;
  for (std::int64_t j = 0; j < c; ++j) EXPECT_EQ(dweight_fused.data<float>()[j], dweight_plain.data<float>()[j]);

  const Tensor too_small = tensor({n * c - 1}, -1, 1);
  const Tensor wrong_dtype = Tensor::zeros({2, 2, c}, DType::F64);
  EXPECT_THROW(ops::rmsnorm_backward(fused, dweight_fused, dout, inp, weight, rstd, too_small), Error);
  EXPECT_THROW(ops::rmsnorm_backward(fused, dweight_fused, dout, inp, weight, rstd, wrong_dtype), Error);
}

}  // namespace
}  // namespace moebench::ops::cpu
