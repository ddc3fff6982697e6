// device_gradient_buckets on host memory laid out as a GPU model lays out its
// gradients (views of shared allocations): the cut is the same on any device.
#include "moebench/train/device_gradient_buckets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

// Parameters whose gradients are views of a few flat f32 allocations.
struct Layout {
  // A parameter of `numel` elements at `offset` of `allocation`.
  model::Parameter* add(const std::string& name, const Tensor& allocation, int64_t offset, int64_t numel) {
    model::Parameter& p = parameters.emplace_back();
    p.name = name;
    p.grad = allocation.slice(0, offset, offset + numel);
    list.push_back(&p);
    return &p;
  }
  std::deque<model::Parameter> parameters;
  std::vector<model::Parameter*> list;
};

struct Span {
  const void* allocation;
  int64_t offset;
  int64_t numel;
  bool operator==(const Span&) const = default;
};

std::vector<Span> spans(const std::vector<Tensor>& buckets) {
  std::vector<Span> result;
  for (const Tensor& bucket : buckets) {
    EXPECT_EQ(bucket.dtype(), DType::F32);
    EXPECT_EQ(bucket.dim(), 1);
    result.push_back({bucket.storage().get(), bucket.storage_offset(), bucket.numel()});
  }
  return result;
}

TEST(TrainDeviceGradientBuckets, CutsEachAllocationAtParameterBoundariesInBackwardOrder) {
  const Tensor experts = Tensor::zeros({30}, DType::F32);  // three stacked 10-element experts
  const Tensor norm = Tensor::zeros({4}, DType::F32);
  Layout layout;
  layout.add("norm", norm, 0, 4);
  layout.add("expert0", experts, 0, 10);
  layout.add("expert1", experts, 10, 10);
  layout.add("expert2", experts, 20, 10);
  // Backward reaches the experts first; within them buckets close at or past 15 elements.
  const std::vector<Tensor> buckets = device_gradient_buckets(layout.list, 15);
  EXPECT_EQ(spans(buckets), (std::vector<Span>{{experts.storage().get(), 0, 20},
                                               {experts.storage().get(), 20, 10},
                                               {norm.storage().get(), 0, 4}}));
}

TEST(TrainDeviceGradientBuckets, BucketsViewTheGradientsInPlace) {
  const Tensor allocation = Tensor::zeros({6}, DType::F32);
  Layout layout;
  model::Parameter* first = layout.add("first", allocation, 0, 2);
  model::Parameter* second = layout.add("second", allocation, 2, 4);
  const std::vector<Tensor> buckets = device_gradient_buckets(layout.list, 100);
  ASSERT_EQ(buckets.size(), 1u);
  for (int64_t i = 0; i < 6; ++i) buckets[0].data<float>()[i] = float(i + 1);
  EXPECT_EQ(first->grad.data<float>()[1], 2.0f);
  EXPECT_EQ(second->grad.data<float>()[3], 6.0f);
}

TEST(TrainDeviceGradientBuckets, AGapBetweenGradientsStartsANewBucket) {
  const Tensor allocation = Tensor::zeros({10}, DType::F32);
  Layout layout;
  layout.add("low", allocation, 0, 3);
  layout.add("high", allocation, 5, 5);
  EXPECT_EQ(spans(device_gradient_buckets(layout.list, 100)),
            (std::vector<Span>{{allocation.storage().get(), 0, 3}, {allocation.storage().get(), 5, 5}}));
}

TEST(TrainDeviceGradientBuckets, RejectsOverlappingAndNonFloat32Gradients) {
  const Tensor allocation = Tensor::zeros({10}, DType::F32);
  Layout overlapping;
  overlapping.add("a", allocation, 0, 6);
  overlapping.add("b", allocation, 4, 6);
  EXPECT_THAT([&] { device_gradient_buckets(overlapping.list, 100); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("overlaps another parameter's")));
  Layout doubles;
  doubles.add("wide", Tensor::zeros({4}, DType::F64), 0, 4);
  EXPECT_THAT([&] { device_gradient_buckets(doubles.list, 100); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("the gradient of wide")));
  EXPECT_THAT([&] { device_gradient_buckets({}, 0); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("--ddp-bucket-size")));
}

}  // namespace
}  // namespace moebench::train
