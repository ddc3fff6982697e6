#pragma once
// Megatron-Core's tensor-parallel regions (tensor_parallel/mappings.py) for
// token-major activations [N, ...]: how activations enter a column-parallel
// block and leave a row-parallel one, each with its adjoint for the backward.
//
//                        forward                backward
//   enter, SP            all-gather tokens      reduce-scatter tokens
//   enter, no SP         identity               all-reduce
//   exit, SP             reduce-scatter tokens  all-gather tokens
//   exit, no SP          all-reduce             identity
//
// Under sequence parallelism each tp rank holds a contiguous chunk of the
// N = B x S token rows between blocks: rank r rows [r N/TP, (r+1) N/TP).
// (Megatron shards its s-major [S, B] rows the same way; with one sequence
// per microbatch these are the same tokens.) With one tp rank, or no group,
// every function returns its input unchanged. CPU tensors.
#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"
#include "moebench/dist/parallel_state.h"

namespace moebench::dist {

class TensorParallelRegions {
 public:
  // One rank: every region is the identity.
  TensorParallelRegions() = default;
  // `tensor_parallel_group` (the tp group, kept by reference) may be null.
  TensorParallelRegions(Communicator* tensor_parallel_group, bool sequence_parallel);
  // The tp group of `state` (null: one rank).
  static TensorParallelRegions of(const ParallelState* state, bool sequence_parallel);

  int size() const { return group_ ? group_->size() : 1; }
  int rank() const { return group_ ? group_->rank() : 0; }
  bool is_parallel() const { return size() > 1; }
  bool sequence_parallel() const { return sequence_parallel_ && is_parallel(); }
  Communicator& group() const;  // throws Error with one rank

  // Before a column-parallel block: every rank gets all tokens.
  Tensor enter(const Tensor& x) const;
  Tensor enter_backward(const Tensor& dx) const;
  // After a row-parallel block: the partial outputs summed, onto this rank's tokens.
  Tensor exit(const Tensor& x) const;
  Tensor exit_backward(const Tensor& dx) const;

  // The sequence-parallel primitives (Megatron's *_sequence_parallel_region).
  Tensor gather_tokens(const Tensor& shard) const;          // [N/TP, ...] -> [N, ...]
  Tensor reduce_scatter_tokens(const Tensor& full) const;   // [N, ...] summed -> [N/TP, ...]
  Tensor scatter_tokens(const Tensor& full) const;          // [N, ...] -> this rank's [N/TP, ...] (a copy)
  // In place: the sum over the tp group.
  void all_reduce(const Tensor& tensor) const;

 private:
  Communicator* group_ = nullptr;
  bool sequence_parallel_ = false;
};

}  // namespace moebench::dist
