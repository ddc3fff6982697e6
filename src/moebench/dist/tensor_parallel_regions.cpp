#include "moebench/dist/tensor_parallel_regions.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::dist {
namespace {

std::vector<int64_t> with_rows(std::vector<int64_t> shape, int64_t rows) {
  shape[0] = rows;
  return shape;
}

}  // namespace

TensorParallelRegions::TensorParallelRegions(Communicator* tensor_parallel_group, bool sequence_parallel)
    : group_(tensor_parallel_group), sequence_parallel_(sequence_parallel) {}

TensorParallelRegions TensorParallelRegions::of(const ParallelState* state, bool sequence_parallel) {
  return state ? TensorParallelRegions(&state->group(GroupKind::kTensor), sequence_parallel) : TensorParallelRegions();
}

Communicator& TensorParallelRegions::group() const {
  if (!group_) throw Error("TensorParallelRegions: no tp group (one rank); check is_parallel() first");
  return *group_;
}

Tensor TensorParallelRegions::enter(const Tensor& x) const {
  return sequence_parallel() ? gather_tokens(x) : x;
}

Tensor TensorParallelRegions::enter_backward(const Tensor& dx) const {
  if (sequence_parallel()) return reduce_scatter_tokens(dx);
  all_reduce(dx);
  return dx;
}

Tensor TensorParallelRegions::exit(const Tensor& x) const {
  if (sequence_parallel()) return reduce_scatter_tokens(x);
  all_reduce(x);
  return x;
}

Tensor TensorParallelRegions::exit_backward(const Tensor& dx) const {
  return sequence_parallel() ? gather_tokens(dx) : dx;
}

Tensor TensorParallelRegions::gather_tokens(const Tensor& shard) const {
  if (!is_parallel()) return shard;
  Tensor full = Tensor::empty(with_rows(shard.shape(), shard.size(0) * size()), shard.dtype(), shard.device());
  group_->all_gather(shard.contiguous(), full);
  return full;
}

Tensor TensorParallelRegions::reduce_scatter_tokens(const Tensor& full) const {
  if (!is_parallel()) return full;
  if (full.size(0) % size() != 0)
    throw Error("TensorParallelRegions: " + std::to_string(full.size(0)) + " token rows do not split over TP=" +
                std::to_string(size()) + " ranks; the sequence length must be divisible by TP");
  Tensor shard = Tensor::empty(with_rows(full.shape(), full.size(0) / size()), full.dtype(), full.device());
  group_->reduce_scatter(full.contiguous(), shard, ReduceOp::kSum);
  return shard;
}

Tensor TensorParallelRegions::scatter_tokens(const Tensor& full) const {
  if (!is_parallel()) return full;
  const int64_t rows = full.size(0) / size();
  return full.slice(0, rank() * rows, (rank() + 1) * rows).clone();
}

void TensorParallelRegions::all_reduce(const Tensor& tensor) const {
  if (is_parallel()) group_->all_reduce(tensor, ReduceOp::kSum);
}

}  // namespace moebench::dist
