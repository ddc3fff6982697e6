#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/sort_chunks.h"

namespace moebench::ops::cpu {
namespace {

// Rows one value wide, so a chunk reads as its values: chunks {1, 2}, {}, {3}, {4, 5, 6}.
const std::vector<std::int64_t> kChunkRows = {2, 0, 1, 3};
const std::vector<float> kRows = {1, 2, 3, 4, 5, 6};

TEST(OpsSortChunks, EmitsChunksInTheRequestedOrder) {
  const std::vector<std::int64_t> order = {3, 1, 0, 2};
  std::vector<float> sorted(6);
  sort_chunks_by_index(sorted.data(), kRows.data(), kChunkRows.data(), order.data(), 4, 1);
  EXPECT_EQ(sorted, (std::vector<float>{4, 5, 6, 1, 2, 3}));

  // The inverse order, with the chunk sizes in their new places, restores the input.
  const std::vector<std::int64_t> sorted_rows = {3, 0, 2, 1}, inverse = {2, 1, 3, 0};
  std::vector<float> restored(6);
  sort_chunks_by_index(restored.data(), sorted.data(), sorted_rows.data(), inverse.data(), 4, 1);
  EXPECT_EQ(restored, kRows);
}

TEST(OpsSortChunks, MovesWholeRows) {
  const std::vector<double> rows = {1, 10, 2, 20, 3, 30};
  const std::vector<std::int64_t> chunk_rows = {1, 2}, order = {1, 0};
  std::vector<double> sorted(6);
  sort_chunks_by_index(sorted.data(), rows.data(), chunk_rows.data(), order.data(), 2, 2);
  EXPECT_EQ(sorted, (std::vector<double>{2, 20, 3, 30, 1, 10}));
}

TEST(OpsSortChunks, RejectsAnOrderThatIsNotAPermutation) {
  std::vector<float> sorted(6);
  const std::vector<std::int64_t> repeated = {0, 0, 2, 3}, outside = {0, 1, 2, 4};
  EXPECT_THROW(
      sort_chunks_by_index(sorted.data(), kRows.data(), kChunkRows.data(), repeated.data(), 4, 1),
      Error);
  EXPECT_THROW(
      sort_chunks_by_index(sorted.data(), kRows.data(), kChunkRows.data(), outside.data(), 4, 1),
      Error);
}

}  // namespace
}  // namespace moebench::ops::cpu
