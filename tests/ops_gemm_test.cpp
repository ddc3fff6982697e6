#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "finite_difference.h"
#include "moebench/core/error.h"
#include "moebench/ops/gemm.h"

namespace moebench::ops::cpu {
namespace {

using moebench::testing::max_relative_error;
using moebench::testing::numeric_gradient;
using moebench::testing::uniform_vector;

// A[i,p] and B[p,j] of C = A @ B, read through the layout's storage.
double a_element(const std::vector<double>& a, std::int64_t i, std::int64_t p, std::int64_t m,
                 std::int64_t k, GemmLayout layout) {
  return layout == GemmLayout::kTN ? a[p * m + i] : a[i * k + p];
}
double b_element(const std::vector<double>& b, std::int64_t p, std::int64_t j, std::int64_t n,
                 std::int64_t k, GemmLayout layout) {
  return layout == GemmLayout::kNT ? b[j * k + p] : b[p * n + j];
}

TEST(OpsGemm, EveryLayoutMultipliesTheSameTwoByTwo) {
  // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<float> a_transposed = {1, 3, 2, 4};
  const std::vector<float> b = {5, 6, 7, 8};
  const std::vector<float> b_transposed = {5, 7, 6, 8};
  const std::vector<float> expected = {19, 22, 43, 50};
  std::vector<float> c(4, -1.0f);
  gemm(c.data(), a.data(), b.data(), 2, 2, 2, GemmLayout::kNN, GemmOutput::kOverwrite);
  EXPECT_EQ(c, expected);
  gemm(c.data(), a.data(), b_transposed.data(), 2, 2, 2, GemmLayout::kNT, GemmOutput::kOverwrite);
  EXPECT_EQ(c, expected);
  gemm(c.data(), a_transposed.data(), b.data(), 2, 2, 2, GemmLayout::kTN, GemmOutput::kOverwrite);
  EXPECT_EQ(c, expected);
}

TEST(OpsGemm, MatchesTheDefinitionOnOddShapesAndAccumulates) {
  std::mt19937_64 rng(7);
  const std::int64_t m = 5, n = 7, k = 3;
  for (GemmLayout layout : {GemmLayout::kNN, GemmLayout::kNT, GemmLayout::kTN}) {
    const std::vector<double> a = uniform_vector(rng, m * k);
    const std::vector<double> b = uniform_vector(rng, k * n);
    const std::vector<double> c_initial = uniform_vector(rng, m * n);
    std::vector<double> product(m * n, 0.0);
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        for (std::int64_t p = 0; p < k; ++p) {
          product[i * n + j] += a_element(a, i, p, m, k, layout) * b_element(b, p, j, n, k, layout);
        }
      }
    }
    std::vector<double> c = c_initial;
    gemm(c.data(), a.data(), b.data(), m, n, k, layout, GemmOutput::kOverwrite);
    EXPECT_LT(max_relative_error(c, product), 1e-14);
    c = c_initial;
    gemm(c.data(), a.data(), b.data(), m, n, k, layout, GemmOutput::kAccumulate);
    std::vector<double> accumulated(m * n);
    for (std::size_t i = 0; i < accumulated.size(); ++i) accumulated[i] = c_initial[i] + product[i];
    EXPECT_LT(max_relative_error(c, accumulated), 1e-14);
  }
}

TEST(OpsLinear, ForwardAddsTheBiasToEachRow) {
  // inp [[1,2]], weight rows [1,0], [0,1], [1,1]: inp @ weight^T = [1, 2, 3].
  const std::vector<float> inp = {1, 2};
  const std::vector<float> weight = {1, 0, 0, 1, 1, 1};
  const std::vector<float> bias = {0.5f, -1.0f, 0.0f};
  std::vector<float> out(3);
  linear_forward(out.data(), inp.data(), weight.data(), bias.data(), nullptr, 1, 2, 3);
  EXPECT_EQ(out, (std::vector<float>{1.5f, 1.0f, 3.0f}));
  linear_forward(out.data(), inp.data(), weight.data(), nullptr, nullptr, 1, 2, 3);
  EXPECT_EQ(out, (std::vector<float>{1.0f, 2.0f, 3.0f}));
}

TEST(OpsLinear, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(11);
  const std::int64_t n = 5, in_features = 3, out_features = 7;
  std::vector<double> inp = uniform_vector(rng, n * in_features);
  std::vector<double> weight = uniform_vector(rng, out_features * in_features);
  std::vector<double> bias = uniform_vector(rng, out_features);
  // loss = sum(out * dout), so d loss / d out = dout.
  const std::vector<double> dout = uniform_vector(rng, n * out_features);
  auto loss = [&](const std::vector<double>&) {
    std::vector<double> out(n * out_features);
    linear_forward(out.data(), inp.data(), weight.data(), bias.data(), nullptr, n, in_features,
                   out_features);
    return std::inner_product(out.begin(), out.end(), dout.begin(), 0.0);
  };

  // Parameter gradients accumulate onto what is already there.
  const std::vector<double> dweight_before = uniform_vector(rng, weight.size());
  const std::vector<double> dbias_before = uniform_vector(rng, bias.size());
  std::vector<double> dinp(inp.size(), -1.0);
  std::vector<double> dweight = dweight_before;
  std::vector<double> dbias = dbias_before;
  linear_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                  n, in_features, out_features, GemmOutput::kOverwrite);
  for (std::size_t i = 0; i < dweight.size(); ++i) dweight[i] -= dweight_before[i];
  for (std::size_t i = 0; i < dbias.size(); ++i) dbias[i] -= dbias_before[i];

  EXPECT_LT(max_relative_error(dinp, numeric_gradient(loss, inp)), 1e-8);
  EXPECT_LT(max_relative_error(dweight, numeric_gradient(loss, weight)), 1e-8);
  EXPECT_LT(max_relative_error(dbias, numeric_gradient(loss, bias)), 1e-8);

  // Without a bias, the other gradients are unchanged.
  std::vector<double> dinp_no_bias(inp.size());
  std::vector<double> dweight_no_bias(weight.size(), 0.0);
  linear_backward(dinp_no_bias.data(), dweight_no_bias.data(), nullptr, dout.data(), inp.data(),
                  weight.data(), n, in_features, out_features, GemmOutput::kOverwrite);
  EXPECT_LT(max_relative_error(dinp_no_bias, dinp), 1e-14);
  EXPECT_LT(max_relative_error(dweight_no_bias, dweight), 1e-14);
}

// Shapes and operands of a linear layer with a residual and a gradient to
// accumulate into: the new operands of linear_forward / linear_backward.
struct LinearWithResidual {
  static constexpr std::int64_t n = 6, in_features = 5, out_features = 7;
  std::mt19937_64 rng{23};
  std::vector<double> inp = uniform_vector(rng, n * in_features);
  std::vector<double> weight = uniform_vector(rng, out_features * in_features);
  std::vector<double> bias = uniform_vector(rng, out_features);
  std::vector<double> residual = uniform_vector(rng, n * out_features);
  std::vector<double> dout = uniform_vector(rng, n * out_features);
  std::vector<double> dinp_before = uniform_vector(rng, n * in_features);

  // The unfused layer: the linear layer, then a separate add of the residual.
  std::vector<double> forward_then_add() const {
    std::vector<double> out(n * out_features);
    linear_forward(out.data(), inp.data(), weight.data(), bias.data(), nullptr, n, in_features, out_features);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += residual[i];
    return out;
  }
};

TEST(OpsLinear, ForwardAddsASeparateOrInPlaceResidualAsASeparateAddWould) {
  const LinearWithResidual l;
  const std::int64_t n = l.n, in = l.in_features, outf = l.out_features;
  const std::vector<double> expected = l.forward_then_add();
  // From the definition too: the GEMM, then bias and residual.
  std::vector<double> product(n * outf);
  gemm(product.data(), l.inp.data(), l.weight.data(), n, outf, in, GemmLayout::kNT, GemmOutput::kOverwrite);
  for (std::int64_t i = 0; i < n * outf; ++i) product[i] += l.bias[i % outf] + l.residual[i];
  EXPECT_LT(max_relative_error(expected, product), 1e-14);

  std::vector<double> out(n * outf, -1.0);
  linear_forward(out.data(), l.inp.data(), l.weight.data(), l.bias.data(), l.residual.data(), n, in, outf);
  EXPECT_EQ(out, expected);
  std::vector<double> in_place = l.residual;
  linear_forward(in_place.data(), l.inp.data(), l.weight.data(), l.bias.data(), in_place.data(), n, in, outf);
  EXPECT_EQ(in_place, expected);
}

TEST(OpsLinear, BackwardAccumulatesTheInputGradientAsASeparateAddWould) {
  const LinearWithResidual l;
  const std::int64_t n = l.n, in = l.in_features, outf = l.out_features;
  std::vector<double> dinp(n * in, -1.0), dweight(outf * in, 0.0), dbias(outf, 0.0);
  linear_backward(dinp.data(), dweight.data(), dbias.data(), l.dout.data(), l.inp.data(), l.weight.data(), n, in,
                  outf, GemmOutput::kOverwrite);
  std::vector<double> expected = l.dinp_before;
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += dinp[i];

  std::vector<double> accumulated = l.dinp_before, dweight_again(outf * in, 0.0), dbias_again(outf, 0.0);
  linear_backward(accumulated.data(), dweight_again.data(), dbias_again.data(), l.dout.data(), l.inp.data(),
                  l.weight.data(), n, in, outf, GemmOutput::kAccumulate);
  EXPECT_EQ(accumulated, expected);
  EXPECT_EQ(dweight_again, dweight);
  EXPECT_EQ(dbias_again, dbias);
}

// The Tensor-level ops pass the residual and the dinp mode on to the twins.
TEST(OpsLinearTensor, ResidualAndAccumulatedInputGradientMatchTheTwins) {
  const LinearWithResidual l;
  const std::int64_t n = l.n, in = l.in_features, outf = l.out_features;
  const Tensor inp = Tensor::from_vector(l.inp, {n, in}), weight = Tensor::from_vector(l.weight, {outf, in});
  const Tensor bias = Tensor::from_vector(l.bias), residual = Tensor::from_vector(l.residual, {n, outf});
  const std::vector<double> expected = l.forward_then_add();

  Tensor out = Tensor::empty({n, outf}, DType::F64);
  ops::linear_forward(out, inp, weight, bias, residual);
  EXPECT_EQ(std::vector<double>(out.data<double>(), out.data<double>() + n * outf), expected);
  Tensor in_place = residual.clone();
  ops::linear_forward(in_place, inp, weight, bias, in_place);
  EXPECT_EQ(std::vector<double>(in_place.data<double>(), in_place.data<double>() + n * outf), expected);

  std::vector<double> dinp_expected = l.dinp_before, dweight(outf * in, 0.0);
  linear_backward(dinp_expected.data(), dweight.data(), nullptr, l.dout.data(), l.inp.data(), l.weight.data(), n, in,
                  outf, GemmOutput::kAccumulate);
  Tensor dinp = Tensor::from_vector(l.dinp_before, {n, in});
  Tensor dweight_tensor = Tensor::zeros({outf, in}, DType::F64), no_bias;
  ops::linear_backward(dinp, dweight_tensor, no_bias, Tensor::from_vector(l.dout, {n, outf}), inp, weight,
                       GemmOutput::kAccumulate);
  EXPECT_EQ(std::vector<double>(dinp.data<double>(), dinp.data<double>() + n * in), dinp_expected);
}

TEST(OpsLinearTensor, RejectsAResidualOfAnotherDtypeSizeOrPartlyOverlappingOut) {
  const Tensor inp = Tensor::zeros({4, 3}, DType::F32), weight = Tensor::zeros({5, 3}, DType::F32), no_bias;
  Tensor out = Tensor::empty({4, 5}, DType::F32);
  const auto message_of = [&](const Tensor& residual) {
    try {
      ops::linear_forward(out, inp, weight, no_bias, residual);
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message_of(Tensor::zeros({4, 5}, DType::F64)), ::testing::HasSubstr("residual must be of out's dtype"));
  EXPECT_THAT(message_of(Tensor::zeros({4, 4}, DType::F32)), ::testing::HasSubstr("residual must have 20 elements"));
  EXPECT_THAT(message_of(Tensor::zeros({5, 4}, DType::F32).transpose(0, 1)),
              ::testing::HasSubstr("residual must be contiguous"));
  // One row apart in the same storage: read after it is written.
  const Tensor rows = Tensor::zeros({5, 5}, DType::F32);
  out = rows.slice(0, 0, 4);
  EXPECT_THAT(message_of(rows.slice(0, 1, 5)), ::testing::HasSubstr("partly overlaps out"));
  EXPECT_EQ(message_of(out), "no error");
}

}  // namespace
}  // namespace moebench::ops::cpu
