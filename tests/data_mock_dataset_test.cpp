#include "moebench/data/mock_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::data {
namespace {

TEST(DataMockDataset, SamplesArePureFunctionsOfSeedSplitAndIndex) {
  const MockDataset a(32, 383, 1234, Split::Train), b(32, 383, 1234, Split::Train);
  EXPECT_EQ(a.sample(7), b.sample(7));
  EXPECT_EQ(a.sample(123456789), b.sample(123456789));
  EXPECT_NE(a.sample(7), a.sample(8));
  EXPECT_NE(a.sample(7), MockDataset(32, 383, 1235, Split::Train).sample(7));
  EXPECT_NE(a.sample(7), MockDataset(32, 383, 1234, Split::Validation).sample(7));
}

TEST(DataMockDataset, SequencesWalkOneCycleThroughTheVocabulary) {
  const MockDataset data(16, 50, 3, Split::Train);
  const std::vector<int64_t> tokens = data.sample(0);
  ASSERT_EQ(tokens.size(), 17u);
  for (size_t s = 1; s < tokens.size(); ++s) EXPECT_EQ(tokens[s], data.successor(tokens[s - 1]));
  // One cycle: starting anywhere, 50 steps visit all 50 tokens and come back.
  std::set<int64_t> seen;
  int64_t token = 0;
  for (int i = 0; i < 50; ++i) seen.insert(token = data.successor(token));
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_EQ(token, 0);
  // The validation split shares the cycle, so what is learned carries over.
  const MockDataset validation(16, 50, 3, Split::Validation);
  for (int64_t t = 0; t < 50; ++t) EXPECT_EQ(validation.successor(t), data.successor(t));
}

TEST(DataMockDataset, StartTokensCoverTheVocabulary) {
  const MockDataset data(1, 8, 5, Split::Train);
  std::set<int64_t> starts;
  for (int64_t i = 0; i < 200; ++i) {
    const int64_t start = data.sample(i)[0];
    EXPECT_GE(start, 0);
    EXPECT_LT(start, 8);
    starts.insert(start);
  }
  EXPECT_EQ(starts.size(), 8u);
}

TEST(DataMockDataset, MicrobatchHoldsShiftedLabelsAndAFullMask) {
  const MockDataset data(4, 100, 9, Split::Train);
  const Microbatch batch = data.microbatch(10, 3);
  ASSERT_EQ(batch.tokens.shape(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(batch.tokens.dtype(), DType::I64);
  EXPECT_EQ(batch.labels.dtype(), DType::I64);
  EXPECT_EQ(batch.loss_mask.dtype(), DType::F32);
  for (int64_t b = 0; b < 3; ++b) {
    const std::vector<int64_t> sample = data.sample(10 + b);
    for (int64_t s = 0; s < 4; ++s) {
      EXPECT_EQ(batch.tokens.data<int64_t>()[b * 4 + s], sample[size_t(s)]);
      EXPECT_EQ(batch.labels.data<int64_t>()[b * 4 + s], sample[size_t(s + 1)]);
      EXPECT_EQ(batch.loss_mask.data<float>()[b * 4 + s], 1.0f);
    }
  }
}

TEST(DataMockDataset, RejectsDegenerateShapes) {
  EXPECT_THROW(MockDataset(0, 100, 1, Split::Train), Error);
  EXPECT_THROW(MockDataset(8, 1, 1, Split::Train), Error);
  EXPECT_THROW(MockDataset(8, 100, 1, Split::Train).sample(-1), Error);
}

}  // namespace
}  // namespace moebench::data
