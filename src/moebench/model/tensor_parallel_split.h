#pragma once
// How a tensor-parallel rank's parameter sits in the one-rank parameter of
// the same name, as Megatron's tensor_model_parallel, partition_dim and
// partition_stride attributes say: what a checkpoint needs to place the
// shard, and what the gradient norm needs to count replicas once.
#include <cstdint>
#include <vector>

namespace moebench::model {

// One piece of a split dimension: `size` elements at `global_offset` of the
// one-rank parameter, held at `local_offset` of this rank's.
struct SplitRange {
  int64_t global_offset = 0;
  int64_t local_offset = 0;
  int64_t size = 0;
};

struct TensorParallelSplit {
  // -1: every tp rank holds the whole parameter (norms, the router, MLA's
  // down projections, routed experts); 0: rows (column-parallel weights, the
  // vocabulary); 1: columns (row-parallel weights).
  int partition_dim = -1;
  // The split dimension is this many equal blocks, each split over the tp
  // ranks: 2 for a fused SwiGLU linear_fc1 [gate; up], so each rank holds
  // matching gate and up rows.
  int partition_stride = 1;
  int rank = 0;  // this rank in the tp group
  int size = 1;  // TP

  bool is_split() const { return partition_dim >= 0 && size > 1; }
  // The one-rank shape, from this rank's.
  std::vector<int64_t> global_shape(const std::vector<int64_t>& local_shape) const;
  // This rank's pieces along partition_dim, in local order (one per block);
  // none when not split.
  std::vector<SplitRange> ranges(const std::vector<int64_t>& local_shape) const;
  // The same split for `other_rank` of the group.
  TensorParallelSplit of_rank(int other_rank) const;
};

}  // namespace moebench::model
