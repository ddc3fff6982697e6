#pragma once
// The one-rank tensor of a tensor-parallel tensor, gathered from the tp
// ranks' slices as TensorParallelSplit places them: a split parameter (its
// strided blocks included) or the vocabulary-parallel logits.
#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"
#include "moebench/model/tensor_parallel_split.h"

namespace moebench::model {

// Collective over `tp` (whose size and ranks are the split's): every rank
// passes its float32 CPU slice `local` and gets the whole tensor. Without a
// split, a copy of `local`.
Tensor gather_tensor_parallel(const Tensor& local, const TensorParallelSplit& split, dist::Communicator& tp);

}  // namespace moebench::model
