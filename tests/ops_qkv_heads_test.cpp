// ops::split_qkv / merge_qkv on the CPU: the fused per-group layout taken
// apart element by element, the rotation as RoPE's, and the merge the
// adjoint of the split. The CUDA kernel is checked against these in
// tests/gpu/qkv_heads_test.cpp.
#include "moebench/ops/qkv_heads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"

namespace moebench::ops {
namespace {

constexpr int64_t kTokens = 3, kHeads = 4, kGroups = 2, kHeadDim = 6;
constexpr int64_t kFusedWidth = kGroups * (kHeads / kGroups + 2) * kHeadDim;

Tensor random_tensor(const std::vector<int64_t>& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  for (float& x : values) x = uniform(rng);
  return Tensor::from_vector(values, shape);
}

struct Heads {
  Tensor q = Tensor::zeros({kTokens, kHeads, kHeadDim}, DType::F32);
  Tensor k = Tensor::zeros({kTokens, kGroups, kHeadDim}, DType::F32);
  Tensor v = Tensor::zeros({kTokens, kGroups, kHeadDim}, DType::F32);
};

// A rotation of the first 4 of 6 channels (rotary_percent 2/3) at positions 2, 0, 1.
struct Rotation {
  RopeTable<float> table{kHeadDim, 10000.0, 4, 4.0 / 6.0};
  QkvRotation rotation{{&table, Tensor(), Tensor()}, Tensor::from_vector(std::vector<int64_t>{2, 0, 1})};
};

TEST(OpsQkvHeads, SplitTakesEachGroupsQueryKeyAndValueHeads) {
  const Tensor qkv = random_tensor({kTokens, kFusedWidth}, 1);
  Heads h;
  split_qkv(h.q, h.k, h.v, qkv, nullptr);
  const float* fused = qkv.data<float>();
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t g = 0; g < kGroups; ++g)
      for (int64_t c = 0; c < kHeadDim; ++c) {
        const float* group = fused + t * kFusedWidth + g * 4 * kHeadDim;  // q, q, k, v heads
        for (int64_t j = 0; j < 2; ++j)
          EXPECT_EQ(h.q.data<float>()[(t * kHeads + g * 2 + j) * kHeadDim + c], group[j * kHeadDim + c]);
        EXPECT_EQ(h.k.data<float>()[(t * kGroups + g) * kHeadDim + c], group[2 * kHeadDim + c]);
        EXPECT_EQ(h.v.data<float>()[(t * kGroups + g) * kHeadDim + c], group[3 * kHeadDim + c]);
      }
}

TEST(OpsQkvHeads, SplitRotatesQueriesAndKeysButNotValues) {
  const Tensor qkv = random_tensor({kTokens, kFusedWidth}, 2);
  Heads plain, rotated;
  const Rotation r;
  split_qkv(plain.q, plain.k, plain.v, qkv, nullptr);
  split_qkv(rotated.q, rotated.k, rotated.v, qkv, &r.rotation);
  const int64_t half = 2;  // rot_dim 4
  for (const auto& [name, before, after, heads] : {std::tuple{"q", &plain.q, &rotated.q, kHeads},
                                                   std::tuple{"k", &plain.k, &rotated.k, kGroups}}) {
    for (int64_t t = 0; t < kTokens; ++t) {
      const int64_t position = r.rotation.positions.data<int64_t>()[t];
      for (int64_t head = 0; head < heads; ++head) {
        const float* x = before->data<float>() + (t * heads + head) * kHeadDim;
        const float* y = after->data<float>() + (t * heads + head) * kHeadDim;
        for (int64_t i = 0; i < half; ++i) {
          const float c = r.table.cos[position * half + i], s = r.table.sin[position * half + i];
          EXPECT_NEAR(y[i], x[i] * c - x[i + half] * s, 1e-6) << name;
          EXPECT_NEAR(y[i + half], x[i + half] * c + x[i] * s, 1e-6) << name;
        }
        for (int64_t i = 2 * half; i < kHeadDim; ++i) EXPECT_EQ(y[i], x[i]) << name << " passes channel " << i;
      }
    }
  }
  for (int64_t i = 0; i < plain.v.numel(); ++i) EXPECT_EQ(rotated.v.data<float>()[i], plain.v.data<float>()[i]);
}

double dot(const Tensor& a, const Tensor& b) {
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) sum += double(a.data<float>()[i]) * double(b.data<float>()[i]);
  return sum;
}

// <split(x), (dq, dk, dv)> = <x, merge(dq, dk, dv)>: the merge is the adjoint,
// the transposed rotation included.
TEST(OpsQkvHeads, MergeIsTheAdjointOfSplit) {
  const Rotation r;
  for (const QkvRotation* rotation : {static_cast<const QkvRotation*>(nullptr), &r.rotation}) {
    const Tensor x = random_tensor({kTokens, kFusedWidth}, 3);
    Heads split;
    split_qkv(split.q, split.k, split.v, x, rotation);
    const Tensor dq = random_tensor({kTokens, kHeads, kHeadDim}, 4), dk = random_tensor({kTokens, kGroups, kHeadDim}, 5),
                 dv = random_tensor({kTokens, kGroups, kHeadDim}, 6);
    Tensor dx = Tensor::zeros({kTokens, kFusedWidth}, DType::F32);
    merge_qkv(dx, dq, dk, dv, rotation);
    EXPECT_NEAR(dot(split.q, dq) + dot(split.k, dk) + dot(split.v, dv), dot(x, dx), 1e-5)
        << (rotation ? "rotated" : "plain");
  }
}

TEST(OpsQkvHeads, BadShapesAreClearErrors) {
  Heads h;
  const Tensor narrow = Tensor::zeros({kTokens, kFusedWidth - 1}, DType::F32);
  EXPECT_THROW(split_qkv(h.q, h.k, h.v, narrow, nullptr), Error);
  Tensor three_groups = Tensor::zeros({kTokens, 3, kHeadDim}, DType::F32);
  const Tensor qkv = Tensor::zeros({kTokens, kFusedWidth}, DType::F32);
  EXPECT_THROW(split_qkv(h.q, three_groups, h.v, qkv, nullptr), Error);
  Tensor double_v = Tensor::zeros({kTokens, kGroups, kHeadDim}, DType::F64);
  EXPECT_THROW(split_qkv(h.q, h.k, double_v, qkv, nullptr), Error);
}

}  // namespace
}  // namespace moebench::ops
