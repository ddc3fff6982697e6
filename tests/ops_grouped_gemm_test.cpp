// The tensor-level weight gradient over segments on the CPU: the same sums
// as one k_grouped_gemm_tn_contiguous per segment, and the sum of the
// squares of the result added to `squares` when asked for (the Hopper
// kernel's is checked in tests/gpu/grouped_gemm_test.cpp).
#include "moebench/ops/grouped_gemm.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"

namespace moebench::ops {
namespace {

Tensor random_tensor(std::vector<int64_t> shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  for (float& v : values) v = normal(rng);
  return Tensor::from_vector(values, shape);
}

double squares_of(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += double(t.data<float>()[i]) * double(t.data<float>()[i]);
  return s;
}

TEST(OpsGroupedGemm, SegmentsAddTheirSumsAndTheSquaresOfTheResult) {
  const int64_t groups = 3, n = 4, k = 5;
  const Tensor counts_a = Tensor::from_vector(std::vector<int32_t>{2, 0, 3}, {groups});
  const Tensor counts_b = Tensor::from_vector(std::vector<int32_t>{1, 0, 1}, {groups});
  const std::vector<WeightGradientSegment> segments = {
      {random_tensor({5, n}, 1), random_tensor({5, k}, 2), counts_a},
      {random_tensor({2, n}, 3), random_tensor({2, k}, 4), counts_b},
  };
  for (const GemmOutput output : {GemmOutput::kAccumulate, GemmOutput::kOverwrite}) {
    const Tensor initial = random_tensor({groups, n, k}, 5);
    Tensor expected = initial.clone();
    if (output == GemmOutput::kOverwrite) zero_(expected);
    for (const WeightGradientSegment& s : segments) k_grouped_gemm_tn_contiguous(expected, s.dout, s.a, s.group_counts);

    Tensor dw = initial.clone();
    Tensor squares = Tensor::from_vector(std::vector<double>{0.5}, {1});
    k_grouped_gemm_tn_contiguous(dw, segments, output, &squares);
    for (int64_t i = 0; i < dw.numel(); ++i) EXPECT_FLOAT_EQ(dw.data<float>()[i], expected.data<float>()[i]);
    // The group without rows keeps its values, and they count.
    EXPECT_NEAR(squares.data<double>()[0], 0.5 + squares_of(expected), 1e-9 * squares_of(expected));
  }
}

TEST(OpsGroupedGemm, SquaresMustBeOneDouble) {
  Tensor dw = Tensor::zeros({1, 2, 2}, DType::F32);
  Tensor wrong = Tensor::zeros({2}, DType::F64);
  EXPECT_THROW(k_grouped_gemm_tn_contiguous(dw, {}, GemmOutput::kOverwrite, &wrong), Error);
  Tensor single = Tensor::zeros({1}, DType::F32);
  EXPECT_THROW(k_grouped_gemm_tn_contiguous(dw, {}, GemmOutput::kOverwrite, &single), Error);
}

}  // namespace
}  // namespace moebench::ops
