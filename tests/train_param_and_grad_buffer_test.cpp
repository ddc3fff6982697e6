#include "moebench/train/param_and_grad_buffer.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

// Parameters of 15, 7 and 4 elements: sizes that no group of 4 divides, so
// buckets need padding. Values count up from `first`; gradients are their negatives.
struct ThreeParameters {
  ThreeParameters() {
    add(a, "a", {3, 5}, 0);
    add(b, "b", {7}, 100);
    add(c, "c", {2, 2}, 200);
  }
  static void add(model::Parameter& p, const char* name, const std::vector<int64_t>& shape, int first) {
    p.name = name;
    p.value = Tensor::empty(shape, DType::F32);
    p.grad = Tensor::empty(shape, DType::F32);
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      p.value.data<float>()[i] = float(first + i);
      p.grad.data<float>()[i] = -float(first + i);
    }
  }
  std::vector<model::Parameter*> list() { return {&a, &b, &c}; }
  model::Parameter a, b, c;
};

TEST(TrainParamAndGradBuffer, LaysParametersOutInBackwardOrderAndRebindsThem) {
  ThreeParameters p;
  const ParamAndGradBuffer buffer(p.list(), 4, 0, 10);
  // c (4) + b (7) reach 10 elements: bucket 0 closes there, padded to 12;
  // a (15) makes bucket 1, padded to 16.
  ASSERT_EQ(buffer.buckets().size(), 2u);
  EXPECT_EQ(buffer.buckets()[0].begin, 0);
  EXPECT_EQ(buffer.buckets()[0].end, 12);
  EXPECT_EQ(buffer.buckets()[1].begin, 12);
  EXPECT_EQ(buffer.buckets()[1].end, 28);
  // Values and gradients kept, now views of the buffers.
  EXPECT_EQ(p.a.value.shape(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(p.a.value.data<float>()[14], 14.0f);
  EXPECT_EQ(p.b.grad.data<float>()[6], -106.0f);
  EXPECT_EQ(p.b.value.data<float>(), p.c.value.data<float>() + 4);
  EXPECT_EQ(p.a.grad.data<float>(), buffer.bucket_grads(buffer.buckets()[1]).data<float>());
  EXPECT_EQ(buffer.bucket_values(buffer.buckets()[0]).data<float>()[11], 0.0f);  // padding
}

TEST(TrainParamAndGradBuffer, ShardsOfAllRanksCoverEveryElementOnce) {
  constexpr int kRanks = 4;
  std::map<std::string, std::vector<int>> owners;  // per parameter, per element: how many ranks own it
  for (int rank = 0; rank < kRanks; ++rank) {
    ThreeParameters p;
    const ParamAndGradBuffer buffer(p.list(), kRanks, rank, 10);
    for (const BufferBucket& bucket : buffer.buckets())
      EXPECT_EQ(buffer.shard_grads(bucket).numel(), bucket.numel() / kRanks);
    for (const ShardSegment& segment : buffer.owned_segments()) {
      const model::Parameter& owner = *segment.parameter;
      std::vector<int>& count = owners[owner.name];
      count.resize(size_t(owner.value.numel()));
      const int64_t offset = segment.values.data<float>() - owner.value.data<float>();
      ASSERT_GE(offset, 0);
      ASSERT_LE(offset + segment.values.numel(), owner.value.numel());
      EXPECT_EQ(segment.grads.data<float>(), owner.grad.data<float>() + offset);
      for (int64_t i = 0; i < segment.values.numel(); ++i) ++count[size_t(offset + i)];
    }
  }
  ASSERT_EQ(owners.size(), 3u);
  for (const auto& [name, count] : owners)
    for (size_t i = 0; i < count.size(); ++i) EXPECT_EQ(count[i], 1) << name << "[" << i << "]";
}

TEST(TrainParamAndGradBuffer, RejectsARankOutsideTheGroup) {
  ThreeParameters p;
  EXPECT_THROW(ParamAndGradBuffer(p.list(), 2, 2, 10), Error);
}

}  // namespace
}  // namespace moebench::train
