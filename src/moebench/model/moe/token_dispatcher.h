#pragma once
// Moves routed tokens to their experts and back, on one rank, in the six
// phases Megatron-Core names so expert-parallel dispatchers can replace the
// communication in the middle:
//   dispatch_preprocess   sort (token, slot) pairs by expert and gather rows
//   token_dispatch        communication (identity on one rank)
//   dispatch_postprocess  order rows by local expert (already so on one rank)
//   combine_preprocess    inverse of dispatch_postprocess
//   token_combine         communication (identity on one rank)
//   combine_postprocess   weight rows by their probs and sum them per token
// Dispatch and combine are adjoints sharing one handle.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/model/moe/router.h"
#include "moebench/ops/permute.h"

namespace moebench::model {

class SingleRankTokenDispatcher {
 public:
  struct Handle {
    int64_t tokens = 0, topk = 0, hidden = 0;
    int64_t rows = 0;                        // rows of the permuted buffers (ops::PermuteMap::rows)
    ops::PermuteMap map;                     // the expert sort of the slots
    std::vector<int64_t> tokens_per_expert;  // [E]: rows of each expert, in order (CPU only: a
                                             // GPU run keeps the counts on the device)
    Tensor group_counts;                     // int32 [E] on the tokens' device: the grouped GEMMs' counts
    Tensor probs;                            // [N, topk] routing weights (0 when dropped)
    Tensor expert_out;                       // [rows, h], saved by combine for its backward
  };

  explicit SingleRankTokenDispatcher(int64_t num_experts) : num_experts_(num_experts) {}

  // hidden [N, h] -> permuted [rows, h], expert-sorted.
  Tensor dispatch(const Tensor& hidden, const Routing& routing, Handle& handle) const;
  // expert_out [rows, h] -> out [N, h] = sum over kept slots of prob * row,
  // plus `residual` [N, h] when given (added in the same kernel).
  Tensor combine(const Tensor& expert_out, Handle& handle, const Tensor& residual = Tensor()) const;
  // dout [N, h] -> dexpert_out [rows, h]; writes dprobs [N, topk].
  Tensor combine_backward(const Tensor& dout, const Handle& handle, Tensor& dprobs) const;
  // dpermuted [rows, h] -> dhidden [N, h].
  Tensor dispatch_backward(const Tensor& dpermuted, const Handle& handle) const;

 private:
  Tensor dispatch_preprocess(const Tensor& hidden, const Routing& routing, Handle& handle) const;
  Tensor token_dispatch(const Tensor& permuted) const { return permuted; }
  Tensor dispatch_postprocess(const Tensor& received) const { return received; }
  Tensor combine_preprocess(const Tensor& expert_out) const { return expert_out; }
  Tensor token_combine(const Tensor& expert_out) const { return expert_out; }
  Tensor combine_postprocess(const Tensor& expert_out, Handle& handle, const Tensor& residual) const;

  int64_t num_experts_;
};

}  // namespace moebench::model
