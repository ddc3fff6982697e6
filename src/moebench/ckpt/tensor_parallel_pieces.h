#pragma once
// A tensor-parallel rank's tensors as checkpoint pieces of the one-rank
// tensors: a weight (or an Adam moment shaped like it) holds, along its
// split dimension, the ranges model::TensorParallelSplit names (two for a
// SwiGLU linear_fc1, its gate and up rows), as megatron_sharding.h's
// saved_slices describes them. Without a split these are the whole tensor.
#include <cstdint>
#include <string>
#include <vector>

#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/model/tensor_parallel_split.h"

namespace moebench::ckpt {

// `local` (shaped as this rank's slice) as pieces of the global tensor `name`.
std::vector<ShardedTensor> tensor_parallel_pieces(const std::string& name, const Tensor& local,
                                                  const model::TensorParallelSplit& split);

// Elements [begin, begin + run.numel()) of this rank's row-major slice of
// shape `local_shape` (a distributed optimizer's flat shard, `run` 1-D) as
// pieces of the global tensor `name`.
std::vector<ShardedTensor> tensor_parallel_flat_run_pieces(const std::string& name,
                                                           const std::vector<int64_t>& local_shape, int64_t begin,
                                                           const Tensor& run, const model::TensorParallelSplit& split);

}  // namespace moebench::ckpt
