#include "moebench/model/tensor_parallel_gather.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::model {

Tensor gather_tensor_parallel(const Tensor& local, const TensorParallelSplit& split, dist::Communicator& tp) {
  if (!split.is_split()) return local.clone();
  if (tp.size() != split.size)
    throw Error("gather_tensor_parallel: the split is over " + std::to_string(split.size) +
                " tp ranks but the group has " + std::to_string(tp.size()) + "; pass the tp group of the split");
  const std::vector<int64_t> local_shape = local.shape();
  std::vector<int64_t> stacked_shape = local_shape;
  stacked_shape.insert(stacked_shape.begin(), tp.size());
  Tensor stacked = Tensor::empty(stacked_shape, DType::F32);
  tp.all_gather(local.contiguous(), stacked);
  Tensor whole = Tensor::empty(split.global_shape(local_shape), DType::F32);
  const int64_t dim = split.partition_dim;
  for (int rank = 0; rank < tp.size(); ++rank) {
    const Tensor slice = stacked.slice(0, rank, rank + 1).view(local_shape);
    for (const SplitRange& range : split.of_rank(rank).ranges(local_shape))
      whole.slice(dim, range.global_offset, range.global_offset + range.size)
          .copy_from(slice.slice(dim, range.local_offset, range.local_offset + range.size));
  }
  return whole;
}

}  // namespace moebench::model
