#include "moebench/model/tensor_parallel_split.h"

#include <cstddef>

namespace moebench::model {

std::vector<int64_t> TensorParallelSplit::global_shape(const std::vector<int64_t>& local_shape) const {
  std::vector<int64_t> shape = local_shape;
  if (is_split()) shape[std::size_t(partition_dim)] *= size;
  return shape;
}

std::vector<SplitRange> TensorParallelSplit::ranges(const std::vector<int64_t>& local_shape) const {
  if (!is_split()) return {};
  const int64_t local = local_shape[std::size_t(partition_dim)];
  const int64_t part = local / partition_stride;   // this rank's share of one block
  const int64_t block = part * size;                // one block of the global dimension
  std::vector<SplitRange> pieces;
  for (int b = 0; b < partition_stride; ++b) pieces.push_back({b * block + rank * part, b * part, part});
  return pieces;
}

TensorParallelSplit TensorParallelSplit::of_rank(int other_rank) const {
  TensorParallelSplit split = *this;
  split.rank = other_rank;
  return split;
}

}  // namespace moebench::model
