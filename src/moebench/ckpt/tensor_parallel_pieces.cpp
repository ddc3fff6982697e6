#include "moebench/ckpt/tensor_parallel_pieces.h"

#include <algorithm>

namespace moebench::ckpt {
namespace {

// Appends the pieces of `view`, which holds the rectangle `held` of this
// rank's slice, cut where the split's ranges meet and moved to global places.
void append_global_pieces(std::vector<ShardedTensor>& pieces, const std::string& name,
                          const std::vector<int64_t>& local_shape, const TensorSlice& held, const Tensor& view,
                          const model::TensorParallelSplit& split) {
  const std::vector<int64_t> global_shape = split.global_shape(local_shape);
  if (!split.is_split()) {
    pieces.push_back({name, global_shape, held, view});
    return;
  }
  const auto dim = size_t(split.partition_dim);
  const int64_t begin = held.offsets[dim], end = begin + held.sizes[dim];
  for (const model::SplitRange& range : split.ranges(local_shape)) {
    const int64_t low = std::max(begin, range.local_offset);
    const int64_t high = std::min(end, range.local_offset + range.size);
    if (low >= high) continue;
    TensorSlice slice = held;
    slice.offsets[dim] = range.global_offset + (low - range.local_offset);
    slice.sizes[dim] = high - low;
    pieces.push_back({name, global_shape, slice, view.slice(int64_t(dim), low - begin, high - begin)});
  }
}

}  // namespace

std::vector<ShardedTensor> tensor_parallel_pieces(const std::string& name, const Tensor& local,
                                                  const model::TensorParallelSplit& split) {
  std::vector<ShardedTensor> pieces;
  append_global_pieces(pieces, name, local.shape(), TensorSlice::whole(local.shape()), local, split);
  return pieces;
}

std::vector<ShardedTensor> tensor_parallel_flat_run_pieces(const std::string& name,
                                                           const std::vector<int64_t>& local_shape, int64_t begin,
                                                           const Tensor& run, const model::TensorParallelSplit& split) {
  std::vector<ShardedTensor> pieces;
  for (const ShardedTensor& local : flat_run_pieces(name, local_shape, begin, run))
    append_global_pieces(pieces, name, local_shape, local.slice, local.local, split);
  return pieces;
}

}  // namespace moebench::ckpt
